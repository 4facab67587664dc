package kafkaproc_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// helperEnv makes the test binary act as a kmt-like parent: start a
// cluster in the folder the variable names, print its JVMs' pids, wait to
// be killed.
const helperEnv = "KAFKAPROC_TEST_PARENT"

// TestHelperParent is not a test: it is the process TestJVMsDieWithTheirParent
// SIGKILLs.
func TestHelperParent(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestJVMsDieWithTheirParent")
	}
	c, err := kafkaproc.StartCluster(context.Background(), kafkaproc.Config{Home: os.Getenv(kafkatest.KafkaHomeEnv),
		Dir: dir, Name: "orphan", Brokers: 1})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("PIDS", c.PID(0), c.PID(3000))
	// Start the work from a goroutine that exits, on a thread Go may
	// retire: the JVMs must still live exactly as long as this process.
	done := make(chan struct{})
	go func() { defer close(done) }()
	<-done
	time.Sleep(10 * time.Minute)
}

// alive reports whether pid is a live process (a zombie is dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}

// TestJVMsDieWithTheirParent SIGKILLs a process that runs a cluster (the
// test binary re-executed) and checks that its broker and controller JVMs
// die with it: they never outlive kmt.
func TestJVMsDieWithTheirParent(t *testing.T) {
	home := kafkatest.KafkaHome(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperParent$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+t.TempDir(), kafkatest.KafkaHomeEnv+"="+home)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ERROR") {
			t.Fatal(line)
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "PIDS" {
			for _, s := range f[1:] {
				n, _ := strconv.Atoi(s)
				pids = append(pids, n)
			}
			break
		}
	}
	if len(pids) != 2 || pids[0] == 0 || pids[1] == 0 {
		_ = cmd.Process.Kill()
		t.Fatalf("helper printed no pids: %v (%v)", pids, sc.Err())
	}
	t.Cleanup(func() {
		for _, p := range pids { // in case the test failed: never leave them
			if alive(p) {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
	for _, p := range pids {
		if !alive(p) {
			t.Fatalf("JVM %d is not running before its parent is killed", p)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range pids {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("JVM %d still alive 30 s after its parent was SIGKILLed", p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
