package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBuildsWithoutTheWholeClientset checks that kmt's binary compiles only
// the Kubernetes API group clients the controller uses (core/v1, apps/v1),
// not client-go's whole typed clientset and its apply configurations for
// every API group (about a hundred packages more on a cold build).
func TestBuildsWithoutTheWholeClientset(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	allowed := map[string]bool{
		"k8s.io/client-go/kubernetes/typed/core/v1": true, "k8s.io/client-go/kubernetes/typed/apps/v1": true,
		"k8s.io/client-go/kubernetes/scheme": true,
	}
	typed, apply := 0, 0
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "k8s.io/client-go/kubernetes":
			t.Errorf("kmt imports the whole typed clientset (%s)", p)
		case strings.HasPrefix(p, "k8s.io/client-go/kubernetes/"):
			typed++
			if !allowed[p] {
				t.Errorf("kmt compiles %s", p)
			}
		case strings.HasPrefix(p, "k8s.io/client-go/applyconfigurations/"):
			apply++
		}
	}
	if apply > 6 {
		t.Errorf("kmt compiles %d apply-configuration packages, want only those of the groups it uses", apply)
	}
	t.Logf("%d typed client packages, %d apply-configuration packages", typed, apply)
}
