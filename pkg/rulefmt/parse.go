package rulefmt

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/openanomaly/openanomaly/pkg/config/strictyaml"
)

// Defaults applied to a rule after validation.
var (
	// DefaultModel names the built-in default model, which always exists.
	DefaultModel = "default"
	// DefaultStep is the resolution of the history given to the model.
	DefaultStep = model.Duration(time.Minute)
	// DefaultContext is how much history the model gets.
	DefaultContext = model.Duration(24 * time.Hour)
	// DefaultQuantiles are the levels forecast when a rule lists none.
	DefaultQuantiles = []float64{0.05, 0.5, 0.95}
	// DefaultBand is the anomaly band when a rule's anomaly section has none.
	DefaultBand = []float64{0.05, 0.95}
)

// MinContextPoints is the fewest steps a rule's context may hold: the
// built-in models' minimum (builtin.MinPoints, which a test keeps equal).
// A pipeline with less could never emit anything.
const MinContextPoints = 10

// Labels the product sets on the series it emits (DESIGN §3). A rule's
// labels may not use them.
const (
	LabelPipeline = "pipeline"
	LabelHorizon  = "horizon"
	LabelQuantile = "quantile"
)

// IsReservedLabel reports whether a label name is set by the product or by
// Prometheus itself (__name__ and every other name starting with "__"), so
// that users cannot set it in a rule's labels or in external_labels.
func IsReservedLabel(name string) bool {
	switch name {
	case LabelPipeline, LabelHorizon, LabelQuantile:
		return true
	}
	return strings.HasPrefix(name, "__")
}

// Error is one problem in a pipeline file, with its position and the group
// and rule it concerns.
type Error struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	// Group is the group's name; GroupIndex its 1-based position in the
	// file, used in the message when the name is empty. Both are zero for
	// errors about the whole file.
	Group      string
	GroupIndex int
	// Rule is the rule's forecast name; RuleIndex its 1-based position in
	// the group, used in the message when the name is empty.
	Rule      string
	RuleIndex int
	Err       error
}

// Error reads like
// `pipelines.yml:12:9: group "api", rule "job:x": horizon 7m is not a multiple of step 5m`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(strictyaml.Position(e.File, e.Line, e.Col))
	switch {
	case e.Group != "":
		fmt.Fprintf(&b, "group %q", e.Group)
	case e.GroupIndex > 0:
		fmt.Fprintf(&b, "group %d", e.GroupIndex)
	}
	if b.Len() > 0 && (e.Rule != "" || e.RuleIndex > 0) && (e.Group != "" || e.GroupIndex > 0) {
		b.WriteString(", ")
	}
	switch {
	case e.Rule != "":
		fmt.Fprintf(&b, "rule %q", e.Rule)
	case e.RuleIndex > 0:
		fmt.Fprintf(&b, "rule %d", e.RuleIndex)
	}
	if e.Group != "" || e.GroupIndex > 0 || e.Rule != "" || e.RuleIndex > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ParseFile reads and parses one pipeline file; see Parse.
func ParseFile(path string) (*RuleGroups, []error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{&Error{File: path, Err: err}}
	}
	return Parse(content, path)
}

// Parse parses and validates a pipeline file strictly: unknown keys are
// errors, and every problem is reported, each as an *Error with file, line
// and column, sorted by position. On success the defaults are applied (see
// the Default variables): a rule's Model, Step, Context and Quantiles are
// set, Quantiles sorted and holding 0.5 and the band levels, and an Anomaly
// section holds its band and direction. On failure the groups are nil.
func Parse(content []byte, filename string) (*RuleGroups, []error) {
	root, err := strictyaml.Parse(content)
	if err != nil {
		var se *strictyaml.Error
		if errors.As(err, &se) {
			return nil, []error{&Error{File: filename, Line: se.Line, Col: se.Col, Err: se.Err}}
		}
		return nil, []error{&Error{File: filename, Err: err}}
	}
	rgs := &RuleGroups{file: filename, root: root}
	p := &fileParser{rgs: rgs, content: content, failed: map[*yaml.Node]bool{}}
	for _, de := range strictyaml.Decode(root, rgs) {
		p.decodeError(de)
	}
	p.validate()
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		})
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = e
		}
		return nil, errs
	}
	return rgs, nil
}

// File returns the name the groups were parsed from.
func (g *RuleGroups) File() string { return g.file }

// ErrorAt builds an *Error about rule ri of group gi (0-based), positioned at
// the value of key in that rule (at the rule when key is empty or absent),
// for checks made outside this package, such as whether the rule's model is
// configured.
func (g *RuleGroups) ErrorAt(gi, ri int, key string, err error) *Error {
	e := &Error{File: g.file, GroupIndex: gi + 1, RuleIndex: ri + 1, Err: err}
	if gi >= 0 && gi < len(g.Groups) {
		e.Group = g.Groups[gi].Name
		if ri >= 0 && ri < len(g.Groups[gi].Rules) {
			e.Rule = g.Groups[gi].Rules[ri].Forecast
		}
	}
	path := []any{"groups", gi, "rules", ri}
	if key != "" {
		path = append(path, key)
	}
	if n, _ := strictyaml.Find(g.root, path...); n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}

// CheckUnique reports forecast names defined in more than one of files, at
// each later definition: two pipelines with one name would write the same
// series. Names repeated within one file are reported by Parse.
func CheckUnique(files ...*RuleGroups) []error {
	type def struct {
		file      string
		line, col int
	}
	seen := map[string]def{}
	var errs []error
	for _, f := range files {
		if f == nil {
			continue
		}
		inFile := map[string]bool{}
		for gi, g := range f.Groups {
			for ri, r := range g.Rules {
				if inFile[r.Forecast] {
					continue
				}
				inFile[r.Forecast] = true
				if prev, ok := seen[r.Forecast]; ok {
					errs = append(errs, f.ErrorAt(gi, ri, "forecast", fmt.Errorf("forecast %q is already defined at %s:%d:%d", r.Forecast, prev.file, prev.line, prev.col)))
					continue
				}
				e := f.ErrorAt(gi, ri, "forecast", nil)
				seen[r.Forecast] = def{f.file, e.Line, e.Col}
			}
		}
	}
	return errs
}

// fileParser collects the errors of one file.
type fileParser struct {
	rgs     *RuleGroups
	content []byte
	errs    []*Error
	// failed holds the nodes that did not decode, so that validation does
	// not report them a second time.
	failed map[*yaml.Node]bool
}

// decodeError turns a decoding error into an *Error with its group and rule
// and a message relative to the rule.
func (p *fileParser) decodeError(de *strictyaml.Error) {
	p.failed[de.Node] = true
	e := &Error{File: p.rgs.file, Line: de.Line, Col: de.Col, Err: de.Err}
	rel := de.Path
	if len(rel) >= 2 && rel[0] == "groups" {
		if gi, ok := rel[1].(int); ok {
			e.GroupIndex = gi + 1
			if gi < len(p.rgs.Groups) {
				e.Group = p.rgs.Groups[gi].Name
			}
			rel = rel[2:]
			if len(rel) >= 2 && rel[0] == "rules" {
				if ri, ok := rel[1].(int); ok {
					e.RuleIndex = ri + 1
					if gi < len(p.rgs.Groups) && ri < len(p.rgs.Groups[gi].Rules) {
						e.Rule = p.rgs.Groups[gi].Rules[ri].Forecast
					}
					rel = rel[2:]
				}
			}
		}
	}
	if s := rel.String(); s != "" {
		e.Err = fmt.Errorf("%s: %w", s, de.Err)
	}
	p.errs = append(p.errs, e)
}

// ruleScope reports errors about one group or rule at the nodes of its keys.
type ruleScope struct {
	p    *fileParser
	gi   int
	ri   int // -1 for the group itself
	base []any
}

func (s *ruleScope) node(path ...any) *yaml.Node {
	n, _ := strictyaml.Find(s.p.rgs.root, append(slices.Clip(s.base), path...)...)
	return n
}

func (s *ruleScope) has(key string) bool {
	n, ok := strictyaml.Find(s.p.rgs.root, append(slices.Clip(s.base), key)...)
	return ok && !strictyaml.IsNull(n)
}

func (s *ruleScope) errorfAt(n *yaml.Node, format string, args ...any) {
	e := &Error{File: s.p.rgs.file, GroupIndex: s.gi + 1, Err: fmt.Errorf(format, args...)}
	if n != nil {
		if s.p.failed[n] {
			return
		}
		e.Line, e.Col = n.Line, n.Column
	}
	e.Group = s.p.rgs.Groups[s.gi].Name
	if s.ri >= 0 {
		e.RuleIndex = s.ri + 1
		e.Rule = s.p.rgs.Groups[s.gi].Rules[s.ri].Forecast
	}
	s.p.errs = append(s.p.errs, e)
}

// errorf reports an error at the value found at path below the scope.
func (s *ruleScope) errorf(path []any, format string, args ...any) {
	s.errorfAt(s.node(path...), format, args...)
}

// ok reports whether the value at path decoded (or is absent).
func (s *ruleScope) ok(path ...any) bool {
	n, found := strictyaml.Find(s.p.rgs.root, append(slices.Clip(s.base), path...)...)
	return !found || !s.p.failed[n]
}

func (p *fileParser) validate() {
	// An empty file, or one without groups, is valid and defines nothing,
	// as in Prometheus: generated and templated rule files often are.
	if len(p.rgs.Groups) == 0 {
		return
	}
	groupAt := map[string]int{}
	type forecastDef struct {
		group string
		line  int
	}
	forecastAt := map[string]forecastDef{}
	for gi := range p.rgs.Groups {
		g := &p.rgs.Groups[gi]
		gs := &ruleScope{p: p, gi: gi, ri: -1, base: []any{"groups", gi}}
		if g.Name == "" {
			gs.errorf([]any{"name"}, "group name is required")
		} else if line, dup := groupAt[g.Name]; dup {
			gs.errorf([]any{"name"}, "group name %q is already used at line %d", g.Name, line)
		} else {
			groupAt[g.Name] = gs.node("name").Line
		}
		if g.Interval < 0 {
			gs.errorf([]any{"interval"}, "interval %s must not be negative", g.Interval)
		}
		if g.QueryOffset != nil && *g.QueryOffset < 0 {
			gs.errorf([]any{"query_offset"}, "query_offset %s must not be negative", *g.QueryOffset)
		}
		if g.Limit < 0 {
			gs.errorf([]any{"limit"}, "limit %d must not be negative", g.Limit)
		}
		if g.Concurrency < 0 {
			gs.errorf([]any{"concurrency"}, "concurrency %d must not be negative", g.Concurrency)
		}
		for ri := range g.Rules {
			rs := &ruleScope{p: p, gi: gi, ri: ri, base: []any{"groups", gi, "rules", ri}}
			r := &g.Rules[ri]
			p.validateRule(rs, r)
			if r.Forecast == "" {
				continue
			}
			if prev, dup := forecastAt[r.Forecast]; dup {
				rs.errorf([]any{"forecast"}, "forecast %q is already defined in group %q at line %d", r.Forecast, prev.group, prev.line)
			} else {
				forecastAt[r.Forecast] = forecastDef{g.Name, rs.node("forecast").Line}
			}
		}
	}
}

// validateRule checks one rule against its effective values (defaults
// included) and, where it is valid, fills in the defaults.
func (p *fileParser) validateRule(s *ruleScope, r *Rule) {
	at := func(path ...any) []any { return path }

	switch {
	case r.Forecast == "":
		s.errorf(at("forecast"), "forecast is required")
	case !model.IsValidLegacyMetricName(r.Forecast):
		s.errorf(at("forecast"), "forecast %q is not a valid metric name", r.Forecast)
	}

	if strings.TrimSpace(r.Expr) == "" {
		s.errorf(at("expr"), "expr is required")
	} else if e, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr); err != nil {
		p.exprError(s, err, r.Expr)
	} else if t := e.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
		// A range query only evaluates these; the store would refuse
		// every evaluation.
		s.errorf(at("expr"), "expr is a %s; it must be an instant vector or a scalar (a range selector such as x[5m] needs a function around it, e.g. rate(x[5m]))", parser.DocumentedType(t))
	}

	if s.has("model") && r.Model == "" {
		s.errorf(at("model"), "model must not be empty; omit it for the built-in default")
	}
	if r.Model == "" {
		r.Model = DefaultModel
	}

	stepOK := s.ok("step")
	if !s.has("step") {
		r.Step = DefaultStep
	}
	if r.Step <= 0 {
		s.errorf(at("step"), "step %s must be greater than 0", r.Step)
		stepOK = false
	}

	ctxExplicit := s.has("context")
	if !ctxExplicit {
		r.Context = DefaultContext
	}
	if s.ok("context") {
		// An error caused by the default context belongs to the step.
		ctxAt, note := at("context"), ""
		if !ctxExplicit {
			ctxAt, note = at("step"), " (the default)"
		}
		switch {
		case r.Context <= 0:
			s.errorf(ctxAt, "context %s must be greater than 0", r.Context)
		case !stepOK:
		case r.Context%r.Step != 0:
			s.errorf(ctxAt, "context %s%s is not a multiple of step %s", r.Context, note, r.Step)
		case r.Context < MinContextPoints*r.Step:
			s.errorf(ctxAt, "context %s%s must be at least %d steps (%s): no model forecasts from fewer points",
				r.Context, note, MinContextPoints, MinContextPoints*r.Step)
		}
	}

	seenH := map[model.Duration]bool{}
	for i, h := range r.Horizons {
		if !s.ok("horizons", i) {
			continue
		}
		switch {
		case h <= 0:
			s.errorf(at("horizons", i), "horizon %s must be greater than 0", h)
		case seenH[h]:
			s.errorf(at("horizons", i), "horizon %s is listed twice", h)
		case stepOK && h%r.Step != 0:
			s.errorf(at("horizons", i), "horizon %s is not a multiple of step %s", h, r.Step)
		}
		seenH[h] = true
	}

	seenQ := map[float64]bool{}
	for i, q := range r.Quantiles {
		if !s.ok("quantiles", i) {
			continue
		}
		switch {
		case !(q > 0 && q < 1):
			s.errorf(at("quantiles", i), "quantile %g is not between 0 and 1 (exclusive)", q)
		case seenQ[q]:
			s.errorf(at("quantiles", i), "quantile %g is listed twice", q)
		}
		seenQ[q] = true
	}

	// `anomaly:` with every key commented out still turns scoring on:
	// the section's presence is what counts (DESIGN §2).
	if r.Anomaly == nil && s.ok("anomaly") {
		if _, present := strictyaml.Find(p.rgs.root, append(slices.Clip(s.base), "anomaly")...); present {
			r.Anomaly = &Anomaly{}
		}
	}
	if a := r.Anomaly; a != nil {
		p.validateAnomaly(s, a)
	}

	if len(r.Quantiles) == 0 {
		r.Quantiles = slices.Clone(DefaultQuantiles)
	}
	r.Quantiles = append(r.Quantiles, 0.5)
	if r.Anomaly != nil {
		r.Quantiles = append(r.Quantiles, r.Anomaly.Band...)
	}
	slices.Sort(r.Quantiles)
	r.Quantiles = slices.Compact(r.Quantiles)

	for name, value := range r.Labels {
		keyNode, _ := strictyaml.FindKey(p.rgs.root, append(slices.Clip(s.base), "labels", name)...)
		switch {
		case !model.LabelName(name).IsValidLegacy():
			s.errorfAt(keyNode, "label name %q is not valid", name)
		case IsReservedLabel(name):
			s.errorfAt(keyNode, "label name %q is reserved", name)
		case !utf8.ValidString(value):
			s.errorf(at("labels", name), "label %q: value is not valid UTF-8", name)
		}
	}

	names := map[string]int{}
	for i, c := range r.Covariates {
		switch {
		case c.Name == "":
			s.errorf(at("covariates", i), "covariates[%d]: name is required", i)
		case !model.LabelName(c.Name).IsValidLegacy() || strings.HasPrefix(c.Name, "__"):
			s.errorf(at("covariates", i, "name"), "covariate name %q is not valid (a label name: letters, digits and _, not starting with a digit or __)", c.Name)
		default:
			if prev, dup := names[c.Name]; dup {
				s.errorf(at("covariates", i, "name"), "covariate name %q is already used by covariates[%d]", c.Name, prev)
			}
			names[c.Name] = i
		}
		if strings.TrimSpace(c.Expr) == "" {
			s.errorf(at("covariates", i), "covariate %q: expr is required", c.Name)
		} else if e, err := parser.NewParser(parser.Options{}).ParseExpr(c.Expr); err != nil {
			p.exprError(s, err, c.Expr, "covariates", i, "expr")
		} else if t := e.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
			s.errorf(at("covariates", i, "expr"), "covariate %q: expr is a %s; it must be an instant vector or a scalar", c.Name, parser.DocumentedType(t))
		}
	}
}

func (p *fileParser) validateAnomaly(s *ruleScope, a *Anomaly) {
	bandAt := []any{"anomaly", "band"}
	switch {
	case !s.ok(bandAt...):
	case a.Band == nil:
		a.Band = slices.Clone(DefaultBand)
	case len(a.Band) != 2:
		s.errorf(bandAt, "anomaly band needs exactly two levels, got %d", len(a.Band))
	case !(a.Band[0] > 0 && a.Band[0] < 0.5 && a.Band[1] > 0.5 && a.Band[1] < 1):
		s.errorf(bandAt, "anomaly band [%g, %g] must satisfy 0 < lo < 0.5 < hi < 1", a.Band[0], a.Band[1])
	}
	switch a.Direction {
	case "":
		a.Direction = DirectionBoth
	case DirectionBoth, DirectionAbove, DirectionBelow:
	default:
		s.errorf([]any{"anomaly", "direction"}, "anomaly direction %q is not one of both, above, below", a.Direction)
	}
	if math.IsNaN(a.MinDeviation) || math.IsInf(a.MinDeviation, 0) || a.MinDeviation < 0 {
		s.errorf([]any{"anomaly", "min_deviation"}, "anomaly min_deviation %g must be finite and not negative", a.MinDeviation)
	}
	if n := a.Novelty; n != nil {
		if n.Window <= 0 && s.ok("anomaly", "novelty", "window") {
			s.errorf([]any{"anomaly", "novelty"}, "anomaly novelty window must be set and greater than 0, e.g. 7d")
		}
		switch {
		case math.IsNaN(n.Floor) || math.IsInf(n.Floor, 0) || n.Floor < 0:
			s.errorf([]any{"anomaly", "novelty", "floor"}, "anomaly novelty floor %g must be finite and greater than 0", n.Floor)
		case n.Floor == 0:
			n.Floor = DefaultNoveltyFloor
		}
	}
}

// exprError reports a PromQL parse error at its position in the file when
// the expression's text can be found there (a one-line scalar or a block
// scalar), else at the expr value with the parser's own line:col.
func (p *fileParser) exprError(s *ruleScope, err error, expr string, path ...any) {
	if len(path) == 0 {
		path = []any{"expr"}
	}
	n := s.node(path...)
	var pe *parser.ParseErr
	var pes parser.ParseErrors
	switch {
	case errors.As(err, &pes) && len(pes) > 0:
		pe = &pes[0]
	case errors.As(err, &pe):
	}
	if pe == nil || n == nil {
		s.errorfAt(n, "could not parse expression: %v", err)
		return
	}
	line, col, ok := locate(p.content, n, expr, int(pe.PositionRange.Start))
	if !ok {
		s.errorfAt(n, "could not parse expression: %v", err)
		return
	}
	s.errorfAt(&yaml.Node{Line: line, Column: col}, "could not parse expression: %v", pe.Err)
}

// locate maps a byte offset in a scalar's value to a line and column in the
// file, checking that the value's text really stands there: escapes in
// quoted strings and folded blank lines make the mapping unknowable, and a
// wrong position is worse than the scalar's own.
func locate(content []byte, n *yaml.Node, value string, off int) (line, col int, ok bool) {
	if off < 0 || off > len(value) {
		return 0, 0, false
	}
	// An error at the very end (unexpected end of input) is shown at the
	// end of the last line rather than on the line after the scalar.
	if trimmed := strings.TrimRight(value, "\n"); off > len(trimmed) {
		off = len(trimmed)
	}
	lines := strings.Split(string(content), "\n")
	lineText := func(l int) (string, bool) { // 1-based
		if l < 1 || l > len(lines) {
			return "", false
		}
		return strings.TrimSuffix(lines[l-1], "\r"), true
	}
	switch n.Style {
	case 0, yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if strings.Contains(value, "\n") {
			return 0, 0, false
		}
		quote := 0
		if n.Style != 0 {
			quote = 1
		}
		text, found := lineText(n.Line)
		if !found {
			return 0, 0, false
		}
		start := byteOffsetOfColumn(text, n.Column+quote)
		if start < 0 || !strings.HasPrefix(text[start:], value) {
			return 0, 0, false
		}
		return n.Line, n.Column + quote + utf8.RuneCountInString(value[:off]), true
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The content starts on the line after the indicator; every line
		// is followed by one byte in the value (a newline, or the space a
		// fold leaves).
		indent := -1
		pos := 0
		for l := n.Line + 1; pos <= len(value); l++ {
			text, found := lineText(l)
			if !found {
				return 0, 0, false
			}
			if indent < 0 {
				indent = len(text) - len(strings.TrimLeft(text, " "))
			}
			if len(text) < indent {
				return 0, 0, false
			}
			text = text[indent:]
			if !strings.HasPrefix(value[pos:], text) {
				return 0, 0, false
			}
			if off <= pos+len(text) {
				return l, indent + 1 + utf8.RuneCountInString(text[:off-pos]), true
			}
			pos += len(text) + 1
		}
	}
	return 0, 0, false
}

// byteOffsetOfColumn returns the byte offset of 1-based rune column col in
// text, or -1.
func byteOffsetOfColumn(text string, col int) int {
	c := 1
	for i := range text {
		if c == col {
			return i
		}
		c++
	}
	if c == col {
		return len(text)
	}
	return -1
}
