package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/make/*.golden from this run")

// stub is the kubectl, helm, kops and docker on the tests' PATH: it appends its
// argv (shell-quoted) to $STUB_LOG and prints what the real tool would for
// the few queries k8s.mk reads (load balancer addresses, the controller's
// token, the Grafana password, the Job status). STUB_FAIL makes a matching
// command fail; STUB_KOPS_GET and STUB_JOB choose other answers.
const stub = `#!/bin/bash
{ printf '%s' "${0##*/}"; printf ' %q' "$@"; echo; } >> "$STUB_LOG"
a="${0##*/} $*"
if [ -n "${STUB_FAIL:-}" ] && [[ "$a" == *"$STUB_FAIL"* ]]; then echo "stub: $a failed" >&2; exit 1; fi
for x in "$@"; do
  case "$x" in --from-file=kubeconfig=*) cat "${x#--from-file=kubeconfig=}" > "$STUB_LOG.kubeconfig" ;; esac
done
case "$a" in
"kubectl "*"get --raw /readyz") echo ok ;;
"kubectl "*"broker-external=true"*jsonpath*) printf 'b0.elb.example:9094,b1.elb.example:9094,b2.elb.example:9094,' ;;
"kubectl "*"kube-prometheus-stack-prometheus"*jsonpath*) printf 'prom.elb.example' ;;
"kubectl "*".data.token"*) printf 'dG9rZW4=' ;;
"kubectl "*'.data.ca\.crt'*) printf 'Y2E=' ;;
"kubectl config view"*) printf 'https://api.source.example' ;;
"kubectl "*".data.admin-password"*) printf 'c2VjcmV0' ;;
"kubectl "*".status.succeeded"*) if [ "${STUB_JOB:-}" = failed ]; then printf '/1'; else printf '1/'; fi ;;
"kops get cluster"*)
  case "${STUB_KOPS_GET:-}" in
  notfound) echo 'Error: cluster not found "x"' >&2; exit 1 ;;
  error) echo 'Error: AccessDenied: no credentials' >&2; exit 1 ;;
  esac ;;
esac
exit 0
`

// sandbox is a throwaway copy of what the k8s targets read: the Makefile
// with k8s.mk included, deploy/, kops/, the scenario library and the
// dashboards (the repository's, or placeholders when they are absent), with
// the stubs first on PATH.
type sandbox struct {
	dir, bin, log string
	scenario      string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	dir := t.TempDir()
	s := &sandbox{dir: dir, bin: filepath.Join(dir, ".stubs"), log: filepath.Join(dir, ".stub.log")}
	copyTree(t, ".", filepath.Join(dir, "deploy"), func(p string) bool {
		return strings.HasPrefix(p, ".build") || strings.HasSuffix(p, "_test.go") || strings.HasPrefix(p, "testdata")
	})
	copyTree(t, "../kops", filepath.Join(dir, "kops"), nil)
	copyFile(t, "../k8s.mk", filepath.Join(dir, "k8s.mk"))
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		mk = []byte("help: ## List the targets with one line each.\n\t@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = \":.*?## \"}; {printf \"  %-22s %s\\n\", $$1, $$2}'\n")
	}
	if !bytes.Contains(mk, []byte("include k8s.mk")) {
		mk = append(mk, []byte("\ninclude k8s.mk\n")...)
	}
	writeFile(t, filepath.Join(dir, "Makefile"), mk)
	scen, _ := filepath.Glob("../scenarios/*.yaml")
	if len(scen) == 0 {
		writeFile(t, filepath.Join(dir, "scenarios/kill-source-broker.yaml"), []byte("name: kill-source-broker\nsteps: []\n"))
		writeFile(t, filepath.Join(dir, "scenarios/wan-cut.yaml"), []byte("name: wan-cut\nsteps: []\n"))
	}
	for _, f := range scen {
		copyFile(t, f, filepath.Join(dir, "scenarios", filepath.Base(f)))
	}
	s.scenario = "kill-source-broker"
	if _, err := os.Stat(filepath.Join(dir, "scenarios", s.scenario+".yaml")); err != nil {
		all, _ := filepath.Glob(filepath.Join(dir, "scenarios/*.yaml"))
		s.scenario = strings.TrimSuffix(filepath.Base(all[0]), ".yaml")
	}
	dash, _ := filepath.Glob("../grafana/dashboards/*.json")
	if len(dash) == 0 {
		writeFile(t, filepath.Join(dir, "grafana/dashboards/kmt-replication.json"), []byte(`{"title":"kmt — replication (test placeholder)","panels":[]}`))
	}
	for _, f := range dash {
		copyFile(t, f, filepath.Join(dir, "grafana/dashboards", filepath.Base(f)))
	}
	for _, tool := range []string{"kubectl", "helm", "kops", "docker"} {
		writeFile(t, filepath.Join(s.bin, tool), []byte(stub))
		if err := os.Chmod(filepath.Join(s.bin, tool), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// run runs make in the sandbox and returns the recorded commands and make's
// output.
func (s *sandbox) run(t *testing.T, env []string, args ...string) ([]string, string, error) {
	t.Helper()
	_ = os.Remove(s.log)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = s.dir
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SOURCE_CONTEXT", "DEST_CONTEXT", "KOPS_STATE_STORE", "IMAGE", "VERSION", "SCENARIO", "STUB_FAIL", "STUB_KOPS_GET", "STUB_JOB":
			continue
		case "PATH":
			e = "PATH=" + s.bin + string(os.PathListSeparator) + strings.TrimPrefix(e, "PATH=")
		}
		cmd.Env = append(cmd.Env, e)
	}
	cmd.Env = append(cmd.Env, "STUB_LOG="+s.log)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	b, rerr := os.ReadFile(s.log)
	if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		t.Fatal(rerr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines, string(out), err
}

const testImage = "IMAGE=registry.example/kmt:test"

var modes = []struct {
	name string
	vars []string
}{
	{"kops", []string{"KOPS_STATE_STORE=s3://kmt-state"}},
	{"byo-two", []string{"SOURCE_CONTEXT=src-ctx", "DEST_CONTEXT=dst-ctx"}},
	{"byo-single", []string{"SOURCE_CONTEXT=kind-kmt", "DEST_CONTEXT=kind-kmt"}},
}

// TestMakeTargetsRunTheExpectedCommands runs each target in each mode with
// the stubs and compares the recorded kubectl/helm/kops commands with
// testdata/make/<mode>-<target>.golden (rewrite with -update, then review
// the diff).
func TestMakeTargetsRunTheExpectedCommands(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	s := newSandbox(t)
	for _, m := range modes {
		for _, target := range []string{"k8s-all", "k8s-redeploy-tests", "k8s-delete-tests", "k8s-chaos", "k8s-delete-all"} {
			t.Run(m.name+"/"+target, func(t *testing.T) {
				args := append([]string{target, testImage}, m.vars...)
				if target == "k8s-chaos" {
					args = append(args, "SCENARIO="+s.scenario)
				}
				got, out, err := s.run(t, nil, args...)
				if err != nil {
					t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				golden := filepath.Join("testdata", "make", m.name+"-"+target+".golden")
				text := strings.Join(got, "\n") + "\n"
				if *update {
					writeFile(t, golden, []byte(text))
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./deploy -run TestMakeTargets -update to create it)", err)
				}
				if text != string(want) {
					t.Errorf("make %s ran:\n%s\nwant (%s):\n%s", strings.Join(args, " "), text, golden, want)
				}
				s.checkOutputs(t, m.name, target)
			})
		}
	}
}

// checkOutputs checks what a target generated for kubectl and kops: the
// kustomizations render with the image set, the scenario and dashboards
// ConfigMaps hold the files, the kops specs are fully rendered, the
// controller's kubeconfig is complete.
func (s *sandbox) checkOutputs(t *testing.T, mode, target string) {
	t.Helper()
	build := filepath.Join(s.dir, "deploy", ".build")
	switch target {
	case "k8s-all", "k8s-redeploy-tests":
		names := map[string][]string{"kops": {"source", "destination"}, "byo-two": {"source", "destination"}, "byo-single": {"single"}}[mode]
		for _, n := range names {
			objs := render(t, filepath.Join(build, n))
			checkPods(t, objs)
			for _, o := range objs {
				if tpl := podTemplate(o); tpl != nil {
					for _, c := range append(append([]corev1.Container{}, tpl.Spec.InitContainers...), tpl.Spec.Containers...) {
						if strings.Contains(c.Image, "kmt") && c.Image != "registry.example/kmt:test" {
							t.Errorf("%s: %s runs %s, want IMAGE", n, o, c.Image)
						}
					}
				}
			}
		}
	case "k8s-chaos":
		objs := render(t, filepath.Join(build, "chaos"))
		checkPods(t, objs)
		cm := find(t, objs, "ConfigMap", "kmt-destination", "kmt-chaos").typed.(*corev1.ConfigMap)
		if cm.Data["scenario"] != s.scenario {
			t.Errorf("kmt-chaos scenario %q, want %q", cm.Data["scenario"], s.scenario)
		}
		lib := find(t, objs, "ConfigMap", "kmt-destination", "kmt-scenarios").typed.(*corev1.ConfigMap)
		files, _ := filepath.Glob(filepath.Join(s.dir, "scenarios", "*.yaml"))
		if len(lib.Data) != len(files) {
			t.Errorf("kmt-scenarios has %d files, the library %d", len(lib.Data), len(files))
		}
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if lib.Data[filepath.Base(f)] != string(b) {
				t.Errorf("kmt-scenarios %s differs from the file", filepath.Base(f))
			}
		}
		job := byKind(objs, "Job")[0]
		if img := podTemplate(job).Spec.Containers[0].Image; img != "registry.example/kmt:test" {
			t.Errorf("job image %s", img)
		}
	}
	if target == "k8s-all" {
		objs := render(t, filepath.Join(build, "dashboards"))
		cm := find(t, objs, "ConfigMap", "monitoring", "kmt-dashboards").typed.(*corev1.ConfigMap)
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboards ConfigMap labels %v, want grafana_dashboard: \"1\"", cm.Labels)
		}
		if len(cm.Data) == 0 {
			t.Error("no dashboards in the ConfigMap")
		}
		for k, v := range cm.Data {
			if !json.Valid([]byte(v)) {
				t.Errorf("dashboard %s is not JSON", k)
			}
		}
		if cm.Data["kmt-replication.json"] == "" {
			t.Error("kmt-replication.json missing from the dashboards ConfigMap")
		}
	}
	if target == "k8s-all" && mode == "kops" {
		for _, c := range []struct{ name, zone string }{{"kmt-source.k8s.local", "us-east-1"}, {"kmt-destination.k8s.local", "eu-west-1"}} {
			checkKopsSpec(t, filepath.Join(build, "kops", c.name+".yaml"), c.name, c.zone)
		}
	}
	if target == "k8s-all" && mode != "byo-single" {
		cfg, err := clientcmd.LoadFromFile(s.log + ".kubeconfig")
		if err != nil {
			t.Fatalf("controller kubeconfig: %v", err)
		}
		ctx := cfg.Contexts[cfg.CurrentContext]
		if ctx == nil || ctx.Namespace != "kmt-source" {
			t.Fatalf("kubeconfig context %+v", ctx)
		}
		cl, user := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
		if cl == nil || cl.Server != "https://api.source.example" || string(cl.CertificateAuthorityData) != "ca" || user == nil || user.Token != "token" {
			t.Errorf("kubeconfig cluster %+v user %+v", cl, user)
		}
	}
}

// checkKopsSpec checks a rendered kops spec: every variable replaced, the
// cluster and instance groups named and sized from the make variables.
func checkKopsSpec(t *testing.T, path, name, region string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("${")) {
		t.Fatalf("%s has unrendered variables", path)
	}
	docs := strings.Split(string(b), "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("%s: %d documents, want Cluster + 2 InstanceGroups", path, len(docs))
	}
	var kinds []string
	for _, d := range docs {
		var m struct {
			APIVersion string         `json:"apiVersion"`
			Kind       string         `json:"kind"`
			Metadata   map[string]any `json:"metadata"`
			Spec       map[string]any `json:"spec"`
		}
		if err := yaml.UnmarshalStrict([]byte(d), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m.APIVersion != "kops.k8s.io/v1alpha2" {
			t.Errorf("%s: apiVersion %s", path, m.APIVersion)
		}
		kinds = append(kinds, m.Kind)
		switch m.Kind {
		case "Cluster":
			if m.Metadata["name"] != name || m.Spec["configBase"] != "s3://kmt-state/"+name || m.Spec["kubernetesVersion"] == "" {
				t.Errorf("%s: cluster %v %v", path, m.Metadata, m.Spec["configBase"])
			}
			for i, sub := range m.Spec["subnets"].([]any) {
				if z := sub.(map[string]any)["zone"]; z != region+string(rune('a'+i)) {
					t.Errorf("%s: subnet %d zone %v", path, i, z)
				}
			}
		case "InstanceGroup":
			if m.Metadata["labels"].(map[string]any)["kops.k8s.io/cluster"] != name {
				t.Errorf("%s: instance group of another cluster", path)
			}
			if m.Spec["role"] == "Node" && (m.Spec["minSize"] != float64(6) || m.Spec["maxSize"] != float64(6) || m.Spec["machineType"] != "m6i.large") {
				t.Errorf("%s: nodes %v", path, m.Spec)
			}
		}
	}
	sort.Strings(kinds)
	if strings.Join(kinds, ",") != "Cluster,InstanceGroup,InstanceGroup" {
		t.Errorf("%s: kinds %v", path, kinds)
	}
}

func TestMakeFailsLoudly(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	s := newSandbox(t)
	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		wantOut string
		// lastCmd starts the last command that may have run ("" = none).
		lastCmd string
	}{
		{"one context only", nil, []string{"k8s-all", "SOURCE_CONTEXT=a"}, "DEST_CONTEXT is not set", ""},
		{"kops without state store", nil, []string{"k8s-all"}, "KOPS_STATE_STORE is required", ""},
		{"image without tag", nil, []string{"k8s-all", "SOURCE_CONTEXT=a", "DEST_CONTEXT=a", "IMAGE=registry.example/kmt"}, "has no tag", "kubectl --context a get --raw /readyz"},
		{"broker never ready", []string{"STUB_FAIL=rollout status statefulset/kafka-broker"},
			[]string{"k8s-all", "SOURCE_CONTEXT=a", "DEST_CONTEXT=b", testImage}, "stub: kubectl --context a -n kmt-source rollout status statefulset/kafka-broker",
			"kubectl --context a -n kmt-source rollout status statefulset/kafka-broker --timeout=15m"},
		{"helm failure", []string{"STUB_FAIL=helm upgrade --install kube-prometheus-stack"},
			[]string{"k8s-all", "SOURCE_CONTEXT=a", "DEST_CONTEXT=a", testImage}, "stub: helm upgrade", "helm upgrade --install kube-prometheus-stack"},
		{"no scenario", nil, []string{"k8s-chaos", "SOURCE_CONTEXT=a", "DEST_CONTEXT=a"}, "SCENARIO is required", ""},
		{"unknown scenario", nil, []string{"k8s-chaos", "SOURCE_CONTEXT=a", "DEST_CONTEXT=a", "SCENARIO=nope", testImage}, "no scenario scenarios/nope.yaml", ""},
		{"scenario fails", []string{"STUB_JOB=failed"}, []string{"k8s-chaos", "SOURCE_CONTEXT=a", "DEST_CONTEXT=a", "SCENARIO=" + s.scenario, testImage},
			"FAILED", "kubectl --context a -n kmt-destination get job kmt-controller -o jsonpath=\\{.status.succeeded\\}/\\{.status.failed\\}"},
		{"kops state store unreadable", []string{"STUB_KOPS_GET=error"}, []string{"k8s-delete-all", "KOPS_STATE_STORE=s3://x"}, "AccessDenied",
			"kops get cluster --name kmt-source.k8s.local --state s3://x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out, err := s.run(t, tc.env, tc.args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("make %v succeeded or did not run (%v):\n%s", tc.args, err, out)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out)
			}
			switch {
			case tc.lastCmd == "" && len(got) > 0:
				t.Errorf("ran %q, want no command", got)
			case tc.lastCmd != "" && (len(got) == 0 || !strings.HasPrefix(got[len(got)-1], tc.lastCmd)):
				t.Errorf("commands %q: the last must be %q (nothing may run after a failure)", got, tc.lastCmd)
			}
		})
	}
}

func TestMakeDeleteSkipsClustersAlreadyGone(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	s := newSandbox(t)
	got, out, err := s.run(t, []string{"STUB_KOPS_GET=notfound"}, "k8s-delete-all", "KOPS_STATE_STORE=s3://kmt-state")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{
		"kops get cluster --name kmt-source.k8s.local --state s3://kmt-state",
		"kops get cluster --name kmt-destination.k8s.local --state s3://kmt-state",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ran %q, want only %q", got, want)
	}
	if !strings.Contains(out, "nothing to delete") {
		t.Errorf("output: %s", out)
	}
}

func TestMakeImageAndPush(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	s := newSandbox(t)
	got, out, err := s.run(t, nil, "push", "IMAGE=registry.example/kmt:v9", "VERSION=v9")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{
		"docker build --build-arg VERSION=v9 -t registry.example/kmt:v9 .",
		"docker push registry.example/kmt:v9",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ran %q, want %q", got, want)
	}
}

// TestDockerfile checks the image recipe without a Docker engine: pinned
// bases, a static binary, a distroless non-root final stage.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			froms = append(froms, f[1])
			if !pinned(f[1]) {
				t.Errorf("base image %s is not pinned", f[1])
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	if last := froms[len(froms)-1]; !strings.HasPrefix(last, "gcr.io/distroless/static") || !strings.HasSuffix(last, ":nonroot") {
		t.Errorf("final stage %s, want distroless static nonroot", last)
	}
	for _, want := range []string{"CGO_ENABLED=0", "USER 65532:65532", `ENTRYPOINT ["/kmt"]`, "./cmd/kmt"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestMakeHelpListsTheTargets(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	s := newSandbox(t)
	_, out, err := s.run(t, nil, "help")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, target := range []string{"image", "push", "k8s-all", "k8s-redeploy-tests", "k8s-delete-tests", "k8s-chaos", "k8s-grafana", "k8s-prometheus", "k8s-delete-all", "kops-create", "kops-validate", "kops-delete"} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) > 2 && f[0] == target {
				found = true
			}
		}
		if !found {
			t.Errorf("make help does not list %s with a description:\n%s", target, out)
		}
	}
}

func copyTree(t *testing.T, src, dst string, skip func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		copyFile(t, p, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, b)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
