package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

const chartDir = "helm/openanomaly"

func helmBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	p, err := exec.LookPath("helm")
	if err != nil {
		t.Fatalf("helm not found in PATH (or $HELM): build it from the Go module proxy, as .ci/run does: GOBIN=/usr/local/bin go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	}
	return p
}

// rendered is one `helm template` run, decoded strictly into the
// Kubernetes API types (and the Prometheus Operator's for ServiceMonitor
// and PrometheusRule): an unknown field or a wrong type anywhere fails.
type rendered struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	configMaps     map[string]*corev1.ConfigMap
	serviceAccount *corev1.ServiceAccount
	serviceMonitor *monitoringv1.ServiceMonitor
	prometheusRule *monitoringv1.PrometheusRule
}

func renderChart(t *testing.T, args ...string) (*rendered, string) {
	t.Helper()
	bin := helmBin(t)
	lint := append([]string{"lint", "--strict", chartDir}, args...)
	if out, err := exec.Command(bin, lint...).CombinedOutput(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(lint, " "), err, out)
	}
	tmpl := append([]string{"template", "oa", chartDir, "--namespace", "monitoring"}, args...)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, tmpl...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(tmpl, " "), err, stderr.Bytes())
	}
	r := &rendered{configMaps: map[string]*corev1.ConfigMap{}}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		j, err := sigsyaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		var head struct{ APIVersion, Kind string }
		if err := json.Unmarshal(j, &head); err != nil {
			t.Fatal(err)
		}
		var into any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			r.deployment = &appsv1.Deployment{}
			into = r.deployment
		case "v1 Service":
			r.service = &corev1.Service{}
			into = r.service
		case "v1 ServiceAccount":
			r.serviceAccount = &corev1.ServiceAccount{}
			into = r.serviceAccount
		case "v1 ConfigMap":
			cm := &corev1.ConfigMap{}
			into = cm
			defer func() { r.configMaps[cm.Name] = cm }()
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.serviceMonitor = &monitoringv1.ServiceMonitor{}
			into = r.serviceMonitor
		case "monitoring.coreos.com/v1 PrometheusRule":
			r.prometheusRule = &monitoringv1.PrometheusRule{}
			into = r.prometheusRule
		default:
			t.Fatalf("unexpected object %s %s in the chart's output", head.APIVersion, head.Kind)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Fatalf("%s %s does not match the API type: %v\n%s", head.APIVersion, head.Kind, err, doc)
		}
	}
	if r.deployment == nil || r.service == nil {
		t.Fatalf("the chart rendered no Deployment or no Service:\n%s", out)
	}
	return r, string(out)
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestHelmChart lints and renders the chart for the default values, with
// the Prometheus Operator objects on, and for the GPU values file, and
// checks what each rendered object promises.
func TestHelmChart(t *testing.T) {
	// The chart's alert rules are the deploy/alerts file, byte for byte.
	a, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "files/openanomaly.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s/files/openanomaly.rules.yml differs from %s: cp %s %s/files/", chartDir, alertRules, alertRules, chartDir)
	}

	sidecar := filepath.Join(t.TempDir(), "openanomaly")
	if out, err := exec.Command("go", "build", "-o", sidecar, "../cmd/openanomaly").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name       string
		args       []string
		monitoring bool
		gpu        bool
	}{
		{name: "default"},
		{name: "monitoring", args: []string{"--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"}, monitoring: true},
		{name: "gpu", args: []string{"-f", filepath.Join(chartDir, "values-gpu.yaml")}, monitoring: true, gpu: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := renderChart(t, tc.args...)
			d := r.deployment
			pod := d.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
				t.Error("the pod does not set runAsNonRoot")
			}
			if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
				c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("container security context %+v: want a read-only root and no privilege escalation", c.SecurityContext)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("resource requests %v: want cpu and memory", c.Resources.Requests)
			}
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/-/healthy" {
				t.Error("no liveness probe on /-/healthy")
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
				t.Error("no readiness probe on /-/ready")
			}
			if d.Spec.Template.Annotations["checksum/config"] == "" {
				t.Error("no checksum/config annotation: a changed ConfigMap would not roll the pods")
			}
			gpu, hasGPU := c.Resources.Limits["nvidia.com/gpu"]
			if tc.gpu != hasGPU || (hasGPU && gpu.Value() != 1) {
				t.Errorf("GPU limit %v (present %v), want present %v", gpu.String(), hasGPU, tc.gpu)
			}
			if tc.gpu {
				if len(pod.NodeSelector) == 0 || len(pod.Tolerations) == 0 {
					t.Error("the GPU values set no node selector or tolerations")
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					if m.Name == "models" && m.MountPath == "/models" && m.ReadOnly {
						mounted = true
					}
				}
				if !mounted {
					t.Error("the GPU values mount no model volume at /models")
				}
			}

			// The Service selects the pods and names the port the
			// ServiceMonitor scrapes.
			for k, v := range r.service.Spec.Selector {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("the Service selects %s=%s, which the pods lack", k, v)
				}
			}
			if (r.serviceMonitor != nil) != tc.monitoring || (r.prometheusRule != nil) != tc.monitoring {
				t.Fatalf("ServiceMonitor %v, PrometheusRule %v: want both %v", r.serviceMonitor != nil, r.prometheusRule != nil, tc.monitoring)
			}
			if tc.monitoring {
				for k, v := range r.serviceMonitor.Spec.Selector.MatchLabels {
					if r.service.Labels[k] != v {
						t.Errorf("the ServiceMonitor selects %s=%s, which the Service lacks", k, v)
					}
				}
				if len(r.serviceMonitor.Spec.Endpoints) != 1 || r.serviceMonitor.Spec.Endpoints[0].Port != r.service.Spec.Ports[0].Name {
					t.Errorf("the ServiceMonitor's endpoints %+v do not scrape the Service's port %s", r.serviceMonitor.Spec.Endpoints, r.service.Spec.Ports[0].Name)
				}
				checkPrometheusRule(t, r.prometheusRule)
			}

			checkChartConfig(t, r, sidecar, tc.gpu)
		})
	}

	// A changed pipeline rolls the pods.
	r1, _ := renderChart(t)
	r2, _ := renderChart(t, "--set", "pipelines.node\\.yml.groups[0].interval=2m")
	if r1.deployment.Spec.Template.Annotations["checksum/config"] == r2.deployment.Spec.Template.Annotations["checksum/config"] {
		t.Error("checksum/config did not change with the pipelines")
	}
}

// checkPrometheusRule runs promtool over the rule groups as rendered, and
// compares them with the alert rule file.
func checkPrometheusRule(t *testing.T, pr *monitoringv1.PrometheusRule) {
	t.Helper()
	j, err := json.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	y, err := sigsyaml.JSONToYAML(j)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, y, 0o644); err != nil {
		t.Fatal(err)
	}
	out := runTool(t, "PrometheusRule", promtool(t), "check", "rules", f)
	if !strings.Contains(out, "SUCCESS: 10 rules found") {
		t.Errorf("promtool on the rendered PrometheusRule:\n%s", out)
	}
	// The rendered annotations keep Prometheus' templates.
	var n int
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if strings.Contains(r.Annotations["summary"], "{{ $labels.") {
				n++
			}
		}
	}
	if n == 0 {
		t.Error("no summary in the rendered PrometheusRule keeps its {{ $labels... }} template")
	}
}

// checkChartConfig lays the two ConfigMaps out as the pod mounts them and
// runs `openanomaly check config` on them. A torchscript model cannot be
// checked by a binary built without libtorch, so for the GPU values only
// the pipeline files are checked (`check rules`) and the config is decoded.
func checkChartConfig(t *testing.T, r *rendered, sidecar string, gpu bool) {
	t.Helper()
	var cfg, pipes *corev1.ConfigMap
	for name, cm := range r.configMaps {
		if strings.HasSuffix(name, "-pipelines") {
			pipes = cm
		} else {
			cfg = cm
		}
	}
	if cfg == nil || pipes == nil || len(pipes.Data) == 0 {
		t.Fatalf("want a config and a non-empty pipelines ConfigMap, got %v", r.configMaps)
	}
	root := filepath.Join(t.TempDir(), "etc/openanomaly")
	if err := os.MkdirAll(filepath.Join(root, "pipelines"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(root, "openanomaly.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.Data["openanomaly.yml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	var files []string
	for name, content := range pipes.Data {
		p := filepath.Join(root, "pipelines", name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	if gpu {
		var c map[string]any
		if err := yaml.Unmarshal([]byte(cfg.Data["openanomaly.yml"]), &c); err != nil {
			t.Errorf("config: %v", err)
		}
		runTool(t, "pipelines", sidecar, append([]string{"check", "rules"}, files...)...)
		return
	}
	out := runTool(t, "config", sidecar, "check", "config", cfgFile)
	if m := ruleFilesFound.FindStringSubmatch(out); m == nil || m[1] != fmt.Sprint(len(files)) {
		t.Errorf("openanomaly check config did not find the %d pipeline files:\n%s", len(files), out)
	}
}
