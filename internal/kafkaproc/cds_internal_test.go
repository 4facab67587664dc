package kafkaproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestArchiveLockLeftByADeadProcessIsTakenOver: a lock naming a process
// that is gone does not stop the next JVM from writing the archive; a lock
// of a live process does.
func TestArchiveLockLeftByADeadProcessIsTakenOver(t *testing.T) {
	cd := &classData{dir: t.TempDir()}
	lock := filepath.Join(cd.dir, roleBroker+".jsa.creating")

	if err := os.WriteFile(lock, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if a := cd.forRole(roleBroker, nil); a.dumps {
		t.Fatal("took over the lock of a live process")
	}

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := cd.forRole(roleBroker, nil)
	if !a.dumps || len(a.flags) != 1 {
		t.Fatalf("lock of a dead process not taken over: %+v", a)
	}
	a.done(nil) // the JVM never started: no archive, no lock
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("lock still there after done: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(cd.dir, "*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}

	if a := cd.forRole(roleBroker, []string{"-Xshare:off"}); len(a.flags) != 0 {
		t.Errorf("JVM options that choose sharing themselves got %v", a.flags)
	}
}
