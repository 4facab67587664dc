//go:build linux

package report

import (
	"bytes"
	"context"
	"errors"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumBinary finds Debian's chromium, failing in CI (CI=true) where
// scripts/test-deps.sh must have installed it and skipping loudly elsewhere.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; CI must install it (make test-deps runs scripts/test-deps.sh)")
	}
	t.Skip("SKIPPED — THE HTML REPORT WAS NOT CHECKED IN A BROWSER: chromium is not installed. " +
		"Run `make test-deps` (installs Debian's chromium) to enable this test.")
	return ""
}

// runChromium runs headless chromium with args in its own process group,
// bounded by ctx, and returns its standard output. The whole group is killed
// when ctx ends and after chromium exits (its helpers must not outlive the
// test).
func runChromium(ctx context.Context, t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	home := t.TempDir()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND",
		"--user-data-dir=" + filepath.Join(home, "profile"),
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		// Helpers left in the group; ESRCH when none.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("chromium timed out after %v; stderr:\n%s", time.Since(start).Round(time.Millisecond), tail(stderr.String(), 2000))
		}
		t.Fatalf("chromium %v: %v; stderr:\n%s", args, err, tail(stderr.String(), 2000))
	}
	t.Logf("chromium %s took %v", args[0], time.Since(start).Round(time.Millisecond))
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: path}).String()
}

// probeScript, added to a test copy of the page only, sets the title to the
// number of images and how many failed to load or decode, once loaded.
const probeScript = `<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  var sizes = imgs.map(function (i) { return i.naturalWidth + "x" + i.naturalHeight; }).join(",");
  document.title = "images=" + imgs.length + " broken=" + broken + " sizes=" + sizes;
});
</script>`

var probeTitleRe = regexp.MustCompile(`<title>images=(\d+) broken=(\d+) sizes=([0-9x,]*)</title>`)

// probe loads page (with the probe script added) and returns the number of
// images, of broken ones, and their natural sizes.
func probe(ctx context.Context, t *testing.T, bin, dir, name, page string) (images, broken int, sizes string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Replace(page, "</body>", probeScript+"</body>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := runChromium(ctx, t, bin, "--dump-dom", "--virtual-time-budget=10000", fileURL(path))
	m := probeTitleRe.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the probe did not run on %s (title not set); DOM starts:\n%s", name, tail(string(dom[:min(len(dom), 600)]), 600))
	}
	images, _ = strconv.Atoi(string(m[1]))
	broken, _ = strconv.Atoi(string(m[2]))
	return images, broken, string(m[3])
}

// TestReportInChromium opens the report in headless Chromium: every image
// must load and decode at its size, and a screenshot must show the verdict
// badge and the charts.
func TestReportInChromium(t *testing.T) {
	bin := chromiumBinary(t)
	page := readFile(t, filepath.Join(fixtureReport(t), HTMLFile))
	dir := t.TempDir()
	// The screenshot is of a copy in the test's own directory, kept there.
	if err := os.WriteFile(filepath.Join(dir, HTMLFile), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	images, broken, sizes := probe(ctx, t, bin, dir, "probe.html", page)
	if images != 5 || broken != 0 {
		t.Errorf("chromium loaded %d images, %d broken; want 5, none broken", images, broken)
	}
	if want := strings.TrimSuffix(strings.Repeat("900x360,", 5), ","); sizes != want {
		t.Errorf("image sizes in the browser %s, want %s", sizes, want)
	}

	// Control: the probe does notice a broken image.
	corrupt := strings.Replace(page, "data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1)
	if corrupt == page {
		t.Fatal("no chart to corrupt")
	}
	if images, broken, _ := probe(ctx, t, bin, dir, "probe-broken.html", corrupt); images != 5 || broken != 1 {
		t.Errorf("with one chart corrupted the probe saw %d images, %d broken; want 5, 1", images, broken)
	}

	shot := filepath.Join(dir, "report-screenshot.png")
	runChromium(ctx, t, bin, "--screenshot="+shot, "--window-size=1200,3000", "--hide-scrollbars", fileURL(filepath.Join(dir, HTMLFile)))
	t.Logf("screenshot: %s", shot)
	raw, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 3000 {
		t.Errorf("screenshot is %dx%d, want 1200x3000", b.Dx(), b.Dy())
	}
	// The FAIL badge (#c62828) and the charts' replicated-rate line and
	// failed-step shading must be painted.
	counts := map[string]int{}
	want := map[string]color.NRGBA{
		"verdict badge":      {0xc6, 0x28, 0x28, 255},
		"replicated line":    colGreen,
		"failed-step window": over(colBandBad),
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			for name, w := range want {
				if nearColour(c, w, 4) {
					counts[name]++
				}
			}
		}
	}
	for name, min := range map[string]int{"verdict badge": 3000, "replicated line": 200, "failed-step window": 10000} {
		if counts[name] < min {
			t.Errorf("screenshot shows %d pixels of the %s, want at least %d", counts[name], name, min)
		}
	}
	t.Logf("screenshot pixel counts: %v", counts)
}
