package kafkaproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// launcher forks child processes from one goroutine locked to its OS thread.
// Linux delivers the parent-death signal when the thread that forked a child
// exits, not the process, and Go retires threads; a thread that only exits
// when the launcher is closed (after its children are dead) makes
// Pdeathsig mean "when this process dies".
type launcher struct {
	reqs chan launchReq
	once sync.Once
	done chan struct{}
}

type launchReq struct {
	cmd *exec.Cmd
	err chan error
}

func newLauncher() *launcher {
	l := &launcher{reqs: make(chan launchReq), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *launcher) loop() {
	// Never unlocked: when loop returns the thread exits with it, which
	// SIGKILLs any child still alive (there should be none by then).
	runtime.LockOSThread()
	for {
		select {
		case r := <-l.reqs:
			r.err <- r.cmd.Start()
		case <-l.done:
			return
		}
	}
}

// start starts cmd from the launcher's thread.
func (l *launcher) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	r := launchReq{cmd: cmd, err: make(chan error, 1)}
	select {
	case l.reqs <- r:
	case <-l.done:
		return errors.New("launcher closed")
	}
	return <-r.err
}

func (l *launcher) close() { l.once.Do(func() { close(l.done) }) }

// proc is one running JVM.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed when the process has been reaped
	err  error         // Wait's result, set before done is closed
	log  string        // the file its output goes to
	// dumping: the JVM writes a class-data archive as it exits (see
	// classData), which a graceful stop waits for longer.
	dumping bool
}

// dumpGrace is the least time a graceful stop gives a JVM that writes a
// class-data archive as it exits.
const dumpGrace = 45 * time.Second

// startProc starts java with args, stdout and stderr appended to logPath.
func startProc(l *launcher, java string, args []string, dir, logPath string, env []string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(java, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	if err := l.start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", java, err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process's whole group.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(-p.pid, sig)
	}
}

// kill SIGKILLs the group and waits until the process is reaped.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM, waits for the exit until ctx is done or grace (at
// least dumpGrace for a JVM writing an archive) has passed, then SIGKILLs. It reports whether the exit was graceful.
func (p *proc) stop(ctx context.Context, grace time.Duration) bool {
	if p.exited() {
		return true
	}
	p.signal(syscall.SIGTERM)
	if p.dumping {
		grace = max(grace, dumpGrace)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	p.kill()
	return false
}

// tailLines is how much of a log an error quotes.
const tailLines = 30

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exitError describes why a process that should be running is not: its
// exit status, the tail of its log and where the full log is.
func (p *proc) exitError(what string) error {
	st := "exited with status 0"
	if p.err != nil {
		st = p.err.Error()
	}
	return fmt.Errorf("%s %s; last lines of %s:\n%s", what, st, p.log, tail(p.log, tailLines))
}
