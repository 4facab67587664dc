package kafkaproc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmtproject/kmt/internal/kafkaproc"
)

// fakeJava puts a java on PATH that reports specification version v.
func fakeJava(t *testing.T, v string) {
	t.Helper()
	bin := t.TempDir()
	script := "#!/bin/sh\necho '    java.specification.version = " + v + "' >&2\n"
	if err := os.WriteFile(filepath.Join(bin, "java"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
}

// distribution makes a folder that looks like a Kafka distribution.
func distribution(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "libs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "libs", "kafka_2.13-4.1.1.jar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestHomeErrorsSayWhatIsWrong(t *testing.T) {
	noLibs := t.TempDir()
	emptyLibs := t.TempDir()
	if err := os.Mkdir(filepath.Join(emptyLibs, "libs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir, env, java, want string
	}{
		{name: "nothing given", want: "set KAFKA_HOME"},
		{name: "missing folder", dir: filepath.Join(noLibs, "nope"), want: "no such file"},
		{name: "no libs", dir: noLibs, want: "has no libs/ folder"},
		{name: "no kafka jar", dir: emptyLibs, want: "no kafka_2.13-*.jar"},
		{name: "KAFKA_HOME without libs", env: noLibs, want: "KAFKA_HOME"},
		{name: "no java", dir: "dist", java: "none", want: "no java on PATH"},
		{name: "old java", dir: "dist", java: "11", want: "is Java 11: Kafka needs Java 17 or newer"},
		{name: "java 8", dir: "dist", java: "1.8", want: "is Java 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(kafkaproc.HomeEnv, tc.env)
			if tc.dir == "dist" {
				tc.dir = distribution(t)
			}
			switch tc.java {
			case "none":
				t.Setenv("PATH", t.TempDir())
			case "":
			default:
				fakeJava(t, tc.java)
			}
			_, err := kafkaproc.Home(tc.dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Home(%q) = %v, want an error containing %q", tc.dir, err, tc.want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		dir := distribution(t)
		fakeJava(t, "21")
		t.Setenv(kafkaproc.HomeEnv, dir)
		got, err := kafkaproc.Home("")
		if err != nil || got != dir {
			t.Fatalf("Home(\"\") with KAFKA_HOME=%s = %q, %v", dir, got, err)
		}
	})
}
