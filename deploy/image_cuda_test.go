package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const dockerfileCUDA = "Dockerfile.cuda"

// argDefault returns the default of `ARG name=value` in instructions, or
// fails.
func argDefault(t *testing.T, ins []instruction, name string) string {
	t.Helper()
	for _, in := range ins {
		if in.cmd == "ARG" {
			if k, v, ok := strings.Cut(in.args, "="); ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	t.Fatalf("%s has no ARG %s=<default>", dockerfileCUDA, name)
	return ""
}

// makeVar returns the default of `NAME ?= value` in the Makefile.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `\s*\?=\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("the Makefile sets no %s ?= <default>", name)
	}
	return string(m[1])
}

// findLibtorch is the libtorch `make test` installs (test-libtorch runs
// first): $LIBTORCH (which make test passes), else the Makefile's default,
// $OPENANOMALY_CACHE (default ~/.cache/openanomaly)/torch-<version>/torch,
// with the CUDA image's default torch version.
func findLibtorch(t *testing.T, version string) string {
	t.Helper()
	dir := os.Getenv("LIBTORCH")
	if dir == "" {
		cache := os.Getenv("OPENANOMALY_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatal(err)
			}
			cache = filepath.Join(home, ".cache", "openanomaly")
		}
		dir = filepath.Join(cache, "torch-"+version, "torch")
	}
	if _, err := os.Stat(filepath.Join(dir, "lib", "libtorch_cpu.so")); err != nil {
		t.Fatalf("no libtorch at %s (set LIBTORCH, or OPENANOMALY_CACHE): `make libtorch` installs torch %s there, and `make test` runs it first: %v", dir, version, err)
	}
	return dir
}

// TestBuildScriptLibtorch runs what the CUDA image's build stage runs,
// deploy/build.sh --libtorch DIR --bundle, outside Docker against the
// libtorch of the torch version the image pins: the tagged sidecar must
// link libtorch_cpu from the bundle through its $ORIGIN RUNPATH with no
// library missing (so the bundle's layout is what torch's own RPATH
// expects), report the libtorch tag, and pass the image's healthcheck
// probe, which stays static.
func TestBuildScriptLibtorch(t *testing.T) {
	ins := readDockerfile(t, dockerfileCUDA)
	lt := findLibtorch(t, argDefault(t, ins, "TORCH_VERSION"))
	out := t.TempDir()
	cmd := exec.Command("sh", "build.sh", "--libtorch", lt, "--bundle", out)
	cmd.Env = append(os.Environ(), "VERSION=9.8.7-cuda-test", "REVISION=abc123", "BRANCH=test", "LIBTORCH_RPATH=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build.sh --libtorch %s --bundle: %v\n%s", lt, err, b)
	}
	sidecar := filepath.Join(out, "openanomaly")
	probe := filepath.Join(out, "openanomaly-healthcheck")
	assertStatic(t, probe)

	f, err := elf.Open(sidecar)
	if err != nil {
		t.Fatal(err)
	}
	runpath, _ := f.DynString(elf.DT_RUNPATH)
	rpath, _ := f.DynString(elf.DT_RPATH)
	f.Close()
	if got := strings.Join(append(runpath, rpath...), ":"); got != "$ORIGIN/libtorch/torch/lib" {
		t.Errorf("the sidecar's RUNPATH/RPATH is %q, want $ORIGIN/libtorch/torch/lib", got)
	}

	b, err := exec.Command("ldd", sidecar).CombinedOutput()
	if err != nil {
		t.Fatalf("ldd %s: %v\n%s", sidecar, err, b)
	}
	ldd := string(b)
	if strings.Contains(ldd, "not found") {
		t.Errorf("ldd: libraries missing:\n%s", ldd)
	}
	for _, lib := range []string{"libtorch_cpu.so", "libc10.so", "libcudart.so"} {
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(lib) + `\S* => ` + regexp.QuoteMeta(filepath.Join(out, "libtorch")) + `/`)
		if !re.MatchString(ldd) {
			t.Errorf("ldd does not show %s from the bundle %s/libtorch:\n%s", lib, out, ldd)
		}
	}
	// libtorch_cuda is dlopened on demand from libtorch_cpu's folder, with
	// its NVIDIA libraries found through torch's RPATH.
	cuda := filepath.Join(out, "libtorch", "torch", "lib", "libtorch_cuda.so")
	if b, err := exec.Command("ldd", cuda).CombinedOutput(); err != nil || strings.Contains(string(b), "not found") {
		t.Errorf("ldd %s (what CUDA models load): %v\n%s", cuda, err, b)
	}
	if _, err := os.Stat(filepath.Join(out, "libtorch", "torch", "lib", "libtorch_python.so")); err == nil {
		t.Error("the bundle carries libtorch_python.so, which the Go binary does not need")
	}

	v, err := exec.Command(sidecar, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", sidecar, err, v)
	}
	for _, want := range []string{"version 9.8.7-cuda-test", "revision: abc123", "tags:             libtorch"} {
		if !strings.Contains(string(v), want) {
			t.Errorf("--version says %q, want it to contain %q", v, want)
		}
	}
	checkProbe(t, sidecar, probe)
}

// TestDockerfileCUDA lints Dockerfile.cuda with hadolint and checks what
// the README and the chart rely on: the build stage installs torch with
// get-libtorch.sh and builds with build.sh --libtorch --bundle, the binary's
// RPATH is where the final stage puts the bundle, the final stage runs as a
// non-root user with the CPU image's HEALTHCHECK and ENTRYPOINT, the
// defaults agree with the Makefile and get-libtorch.sh, and values-gpu.yaml
// names the tag <appVersion>-<CUDA_FLAVOUR> the image is built as.
func TestDockerfileCUDA(t *testing.T) {
	lintDockerfile(t, dockerfileCUDA)

	ins := readDockerfile(t, dockerfileCUDA)
	version := argDefault(t, ins, "TORCH_VERSION")
	flavour := argDefault(t, ins, "CUDA_FLAVOUR")
	if mv := makeVar(t, "TORCH_VERSION"); mv != version {
		t.Errorf("%s defaults TORCH_VERSION to %s, the Makefile to %s", dockerfileCUDA, version, mv)
	}
	if mf := makeVar(t, "CUDA_FLAVOUR"); mf != flavour {
		t.Errorf("%s defaults CUDA_FLAVOUR to %s, the Makefile to %s", dockerfileCUDA, flavour, mf)
	}
	script, err := os.ReadFile("../libtorch/get-libtorch.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), "version=${TORCH_VERSION:-"+version+"}") {
		t.Errorf("libtorch/get-libtorch.sh does not default TORCH_VERSION to %s", version)
	}

	stages := splitStages(t, ins)
	var installs, builds bool
	rpath := ""
	for _, in := range stages[0] {
		if in.cmd != "RUN" {
			continue
		}
		if strings.Contains(in.args, "./libtorch/get-libtorch.sh") {
			installs = true
		}
		if strings.Contains(in.args, "./deploy/build.sh --libtorch") && strings.Contains(in.args, "--bundle /out") {
			builds = true
			if m := regexp.MustCompile(`LIBTORCH_RPATH=(\S+)`).FindStringSubmatch(in.args); m != nil {
				rpath = m[1]
			}
		}
	}
	if !installs {
		t.Error("the build stage does not RUN ./libtorch/get-libtorch.sh")
	}
	if !builds {
		t.Error("the build stage does not RUN ./deploy/build.sh --libtorch ... --bundle /out")
	}

	final := stages[len(stages)-1]
	got := map[string]instruction{}
	bundleAt := ""
	for _, in := range final {
		got[in.cmd] = in
		if in.cmd == "COPY" && strings.HasPrefix(in.args, "--from=build /out/libtorch ") {
			bundleAt = strings.Fields(in.args)[2]
		}
		if in.cmd == "COPY" && !strings.HasPrefix(in.args, "--from") {
			f := strings.Fields(in.args)
			for _, src := range f[:len(f)-1] {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("line %d: COPY of %s, which the build context lacks", in.line, src)
				}
			}
		}
	}
	if bundleAt == "" {
		t.Error("the final stage does not COPY --from=build /out/libtorch")
	} else if rpath != bundleAt+"/torch/lib" {
		t.Errorf("build.sh runs with LIBTORCH_RPATH=%q, but the final stage copies the bundle to %s (want %s/torch/lib)", rpath, bundleAt, bundleAt)
	}
	if u := got["USER"]; u.args == "" || u.args == "root" || strings.HasPrefix(u.args, "0") {
		t.Errorf("final stage USER %q: want a non-root user", u.args)
	}
	if e := got["EXPOSE"]; !strings.Contains(" "+e.args+" ", " 9095 ") {
		t.Errorf("final stage EXPOSE %q: want 9095", e.args)
	}
	cpu := map[string]string{}
	for _, in := range readDockerfile(t, dockerfile) {
		cpu[in.cmd] = in.args
	}
	for _, k := range []string{"HEALTHCHECK", "ENTRYPOINT", "CMD", "EXPOSE", "USER"} {
		if got[k].args != cpu[k] {
			t.Errorf("%s %s differs from the CPU image's %s", k, got[k].args, cpu[k])
		}
	}
	copied := false
	for _, in := range final {
		if in.cmd == "COPY" && in.args == "--from=build /out/openanomaly /out/openanomaly-healthcheck /bin/" {
			copied = true
		}
	}
	if !copied {
		t.Error("the final stage does not COPY both binaries build.sh makes to /bin/")
	}

	// values-gpu.yaml names the CUDA image's tag.
	var chart struct {
		AppVersion string `yaml:"appVersion"`
	}
	var gpu struct {
		Image struct{ Tag string } `yaml:"image"`
	}
	for path, v := range map[string]any{filepath.Join(chartDir, "Chart.yaml"): &chart, filepath.Join(chartDir, "values-gpu.yaml"): &gpu} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if want := chart.AppVersion + "-" + flavour; gpu.Image.Tag != want {
		t.Errorf("values-gpu.yaml's image tag is %q, want %q (<appVersion>-<CUDA_FLAVOUR>, what make image-cuda tags)", gpu.Image.Tag, want)
	}
}
