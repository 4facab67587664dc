package kafkaproc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CacheEnv names the folder kmt caches downloaded and generated files in
// (the Kafka distribution of `make kafka`, the class-data archives). Unset,
// it is $XDG_CACHE_HOME/kmt or ~/.cache/kmt.
const CacheEnv = "KMT_CACHE"

// NoClassDataEnv set to any value turns class-data sharing off: every JVM
// starts without an archive and none is written.
const NoClassDataEnv = "KMT_NO_CDS"

// Roles of Kafka's JVMs, each with an archive of its own: a broker, a
// dedicated controller and a MirrorMaker 2 worker load different classes.
const (
	roleBroker     = "broker"
	roleController = "controller"
	roleMirror     = "mirrormaker2"
)

// classData hands out the JVM flags of class-data sharing (dynamic AppCDS
// archives, JDK 13 and newer) for the JVMs of one Kafka distribution and
// one java. The classes a JVM loads from Kafka's jars are parsed and
// verified once, by the first JVM of a role that exits cleanly, and
// written into an archive that later JVMs of that role map instead: a
// broker then starts with about 40 % less CPU, which on 2 cores and 8
// JVMs starting side by side is most of the start-up.
//
// The archives live in the cache under a key of the java binary and the
// distribution's jars (names, sizes and modification times), so a new JDK
// or other jars get archives of their own instead of ones the JVM would
// refuse. A JVM that finds no archive runs as before; a JVM that cannot
// use one (the JVM checks) runs without it, as -Xshare:auto does.
type classData struct {
	dir string // "" when class-data sharing is off
	log *slog.Logger
}

// newClassData returns the archives of java and home, or a classData that
// hands out no flags when sharing is off (NoClassDataEnv) or there is no
// cache folder.
func newClassData(java, home string, log *slog.Logger) *classData {
	cd := &classData{log: log}
	if os.Getenv(NoClassDataEnv) != "" || java == "" {
		return cd
	}
	root, err := cacheRoot()
	if err != nil {
		return cd
	}
	key, err := classDataKey(java, home)
	if err != nil {
		log.Debug("class data sharing off", "err", err)
		return cd
	}
	cd.dir = filepath.Join(root, "cds", key)
	return cd
}

// cacheRoot is the folder of CacheEnv.
func cacheRoot() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kmt"), nil
}

// classDataKey fingerprints java (its real path, size and modification
// time, and those of the JDK's module image) and the jars of home.
func classDataKey(java, home string) (string, error) {
	h := sha256.New()
	real, err := filepath.EvalSymlinks(java)
	if err != nil {
		return "", err
	}
	files := []string{real, filepath.Join(filepath.Dir(filepath.Dir(real)), "lib", "modules")}
	jars, err := filepath.Glob(filepath.Join(home, "libs", "*"))
	if err != nil {
		return "", err
	}
	slices.Sort(jars)
	for _, f := range append(files, jars...) {
		st, err := os.Stat(f)
		if err != nil {
			if f == files[1] {
				continue // a JDK without a module image: the binary decides
			}
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", f, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// archiving is the class-data sharing of one JVM start: its flags, and
// done, to call with the JVM once it has exited (nil: it never started).
type archiving struct {
	flags []string
	dumps bool // the JVM writes the archive as it exits
	done  func(*proc)
}

// exitedByItself reports whether p ended on its own (SIGTERM included),
// not by SIGKILL: only then did the JVM finish writing an archive.
func exitedByItself(p *proc) bool {
	if p == nil || p.cmd.ProcessState == nil {
		return false
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL)
}

// creatingStale is how old an archive's lock file must be to be taken
// over even though the process that wrote it seems alive.
const creatingStale = 10 * time.Minute

// lockStale reports whether the archive lock file at path was left behind:
// the process named in it is gone (killed before its JVM exited), or it is
// older than creatingStale.
func lockStale(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	if time.Since(st.ModTime()) >= creatingStale {
		return true
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return time.Since(st.ModTime()) > 5*time.Second // being written, or garbage
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// forRole returns the flags of a JVM of role. When the role's archive
// exists the JVM maps it; when none exists and no other JVM is writing it,
// the JVM writes it when it exits (-XX:ArchiveClassesAtExit into a
// temporary file that done renames into place unless the JVM was
// SIGKILLed, perhaps while writing it). jvm
// are the JVM's other flags: flags that choose class-data sharing
// themselves turn this off.
func (cd *classData) forRole(role string, jvm []string) archiving {
	nop := archiving{done: func(*proc) {}}
	if cd.dir == "" {
		return nop
	}
	for _, f := range jvm {
		if strings.HasPrefix(f, "-Xshare") || strings.HasPrefix(f, "-XX:SharedArchiveFile") || strings.HasPrefix(f, "-XX:ArchiveClassesAtExit") {
			return nop
		}
	}
	archive := filepath.Join(cd.dir, role+".jsa")
	if st, err := os.Stat(archive); err == nil && st.Size() > 0 {
		return archiving{flags: []string{"-XX:SharedArchiveFile=" + archive}, done: nop.done}
	}
	if err := os.MkdirAll(cd.dir, 0o755); err != nil {
		return nop
	}
	lock := archive + ".creating"
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		if !lockStale(lock) {
			return nop // another JVM writes it
		}
		_ = os.Remove(lock)
		if f, err = os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err != nil {
			return nop
		}
	}
	_, _ = io.WriteString(f, strconv.Itoa(os.Getpid())+"\n")
	_ = f.Close()
	tmp := fmt.Sprintf("%s.%d.tmp", archive, time.Now().UnixNano())
	return archiving{
		flags: []string{"-XX:ArchiveClassesAtExit=" + tmp},
		dumps: true,
		done: func(p *proc) {
			defer os.Remove(lock)
			if st, err := os.Stat(tmp); err != nil || st.Size() == 0 || !exitedByItself(p) {
				_ = os.Remove(tmp)
				return
			}
			if err := os.Rename(tmp, archive); err != nil {
				_ = os.Remove(tmp)
				return
			}
			cd.log.Info("class data archive written", "role", role, "archive", archive)
		},
	}
}

// startJVM starts java with the JVM flags jvm, the class-data sharing
// flags of role, and args (system properties, class path, main class and
// its arguments), as startProc does.
func startJVM(l *launcher, cd *classData, role, java string, jvm, args []string, dir, logPath string) (*proc, error) {
	a := cd.forRole(role, jvm)
	full := append(append(slices.Clone(jvm), a.flags...), args...)
	p, err := startProc(l, java, full, dir, logPath, os.Environ())
	if err != nil {
		a.done(nil)
		return nil, err
	}
	p.dumping = a.dumps
	go func() {
		<-p.done
		a.done(p)
	}()
	return p, nil
}
