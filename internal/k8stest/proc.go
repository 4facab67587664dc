package k8stest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// proc is one component of the control plane.
type proc struct {
	name string
	log  string
	stop func()
}

// run starts a component in its own process group, its output in
// DIR/NAME.log. Pdeathsig kills it should the test binary die without
// running its cleanups.
func (c *Cluster) run(name, path string, args ...string) error {
	logPath := filepath.Join(c.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that started the child exits: start
	// it from a thread that stays (a locked thread is not reused, an
	// unlocked one lives on in the runtime's pool).
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	pid := cmd.Process.Pid
	c.procs = append(c.procs, &proc{name: name, log: logPath, stop: func() {
		// SIGTERM to the group, SIGKILL after 10 s.
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL) // anything left in the group
	}})
	return nil
}

// stop stops the components in reverse start order.
func (c *Cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
	c.procs = nil
}

// logTails returns the last lines of every component's log, for a failed
// start.
func (c *Cluster) logTails() string {
	var b bytes.Buffer
	for _, p := range c.procs {
		if p.log == "" {
			continue
		}
		data, _ := os.ReadFile(p.log)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "\n--- %s (%s):\n%s", p.name, p.log, data)
	}
	return b.String()
}
