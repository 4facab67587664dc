package kafkaproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HomeEnv is the environment variable Home falls back to when it is given
// no folder: the Kafka distribution folder, as for Kafka's own scripts.
const HomeEnv = "KAFKA_HOME"

// MinJava is the oldest Java feature release Kafka 4 runs on.
const MinJava = 17

// Home validates a Kafka distribution folder and returns its absolute path.
// dir empty means $KAFKA_HOME. The folder must hold libs/kafka_2.13-*.jar,
// and java (on PATH) must be version 17 or newer.
func Home(dir string) (string, error) {
	src := "kafka home"
	if dir == "" {
		dir = os.Getenv(HomeEnv)
		src = HomeEnv
		if dir == "" {
			return "", fmt.Errorf("no Kafka distribution: give a folder holding libs/kafka_2.13-*.jar (make kafka prints one) or set %s", HomeEnv)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", src, dir, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", src, dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s %q is not a folder", src, dir)
	}
	if st, err := os.Stat(filepath.Join(abs, "libs")); err != nil || !st.IsDir() {
		return "", fmt.Errorf("%s %q has no libs/ folder: not a Kafka distribution (unpack kafka_2.13-<version>.tgz or run make kafka)", src, dir)
	}
	jars, _ := filepath.Glob(filepath.Join(abs, "libs", "kafka_2.13-*.jar"))
	if len(jars) == 0 {
		return "", fmt.Errorf("%s %q: libs/ holds no kafka_2.13-*.jar: not a Kafka distribution", src, dir)
	}
	if _, err := javaVersion(); err != nil {
		return "", err
	}
	return abs, nil
}

// javaVersion returns the feature release of the java on PATH (17 for
// 17.0.15) and fails when there is none or it is older than MinJava.
func javaVersion() (int, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return 0, fmt.Errorf("no java on PATH: Kafka needs a Java %d+ runtime (Debian: apt-get install openjdk-17-jre-headless)", MinJava)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, java, "-XshowSettings:properties", "-version").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s -version: %w: %s", java, err, bytes.TrimSpace(out))
	}
	v, err := parseJavaSpec(string(out))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", java, err)
	}
	if v < MinJava {
		return v, fmt.Errorf("%s is Java %d: Kafka needs Java %d or newer", java, v, MinJava)
	}
	return v, nil
}

// parseJavaSpec finds java.specification.version in the output of
// java -XshowSettings:properties ("1.8" is 8, "17" is 17).
func parseJavaSpec(out string) (int, error) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.TrimSpace(k) != "java.specification.version" {
			continue
		}
		v = strings.TrimSpace(v)
		v = strings.TrimPrefix(v, "1.")
		major, _, _ := strings.Cut(v, ".")
		n, err := strconv.Atoi(major)
		if err != nil {
			return 0, fmt.Errorf("java.specification.version %q is not a number", v)
		}
		return n, nil
	}
	return 0, errors.New("java -XshowSettings:properties printed no java.specification.version")
}
