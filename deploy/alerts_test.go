package deploy

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	promparser "github.com/prometheus/prometheus/promql/parser"
)

const (
	alertRules     = "alerts/openanomaly.rules.yml"
	alertRuleTests = "alerts/openanomaly.rules.test.yml"
)

// promtool finds Debian's promtool (package prometheus, which .ci/run
// installs); its absence fails the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found in PATH: install Debian's prometheus package (apt-get install prometheus; .ci/run does): %v", err)
	}
	return p
}

func TestAlertRulesPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", alertRules},
		{"test", "rules", alertRuleTests},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRules checks what promtool does not: every expression reads only
// names the sidecar emits, and every alert has a severity and says what
// happened.
func TestAlertRules(t *testing.T) {
	known := knownNames(t)
	rgs, errs := rulefmt.ParseFile(alertRules, false, model.UTF8Validation, promparser.NewParser(promparser.Options{}), nil)
	if len(errs) > 0 {
		t.Fatalf("parse %s: %v", alertRules, errs)
	}
	alerts := map[string]bool{}
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			where := alertRules + ": " + r.Alert + r.Record
			used, err := exprNames(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", where, err)
			}
			checkNames(t, where, used, known)
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			switch r.Labels["severity"] {
			case "warning", "critical":
			default:
				t.Errorf("%s: severity label %q, want warning or critical", where, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", where, a)
				}
			}
		}
	}
	// The alerts the deploy story promises (issue 7, README "Deploy").
	for _, a := range []string{"OpenAnomalyAnomaly", "OpenAnomalyPipelineFailures", "OpenAnomalyPipelineDown",
		"OpenAnomalyGroupStale", "OpenAnomalyAbsent", "OpenAnomalyMissedIterations",
		"OpenAnomalyRemoteWriteFailing", "OpenAnomalyRemoteWriteDropping", "OpenAnomalyRemoteWriteBacklog"} {
		if !alerts[a] {
			t.Errorf("%s: no alert %s", alertRules, a)
		}
	}
}
