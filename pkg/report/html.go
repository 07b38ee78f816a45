package report

import (
	"bufio"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// WriteHTML renders r as one self-contained HTML file (no network: inline
// CSS, inline SVG, no external scripts or fonts).
func WriteHTML(w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := page.Execute(bw, newPageData(r)); err != nil {
		return err
	}
	return bw.Flush()
}

// pageData is what the template sees: every user string stays a string
// (html/template escapes it); only the SVG, which holds numbers and
// labels this package wrote, is template.HTML.
type pageData struct {
	Title     string
	Generated string
	Command   string
	Range     string
	Tables    []tableData
	Charts    []chartData
}

type tableData struct {
	Title   string
	Columns []string
	Rows    []rowData
	Note    string
}

type rowData struct {
	Name string
	// Link is the id of the chart the row is about, if its name names
	// exactly one series.
	Link  string
	Cells []string
}

type chartData struct {
	ID     string
	Rule   string
	Labels string
	// Group and Short are the chart's entry in the contents: the CSV
	// file's folder and its name, or the rule and the labels.
	Group string
	Short string
	// NewGroup says the entry starts a group in the contents.
	NewGroup bool
	Metrics  []metricData
	Legend   legendData
	Points   int
	SVG      template.HTML
	Empty    bool
}

type metricData struct{ Name, Value string }

type legendData struct {
	// The Has* fields leave out what a series does not have (a rule
	// without a forecast has no median, band or score).
	HasActual, HasMedian, HasBand, HasScore bool
	Band                                    string
	Threshold                               string
	Windows                                 int
	Detected                                int
	Clipped                                 bool
}

func newPageData(r *Report) pageData {
	d := pageData{Title: r.Title, Command: r.Command}
	if d.Title == "" {
		d.Title = "Backtest report"
	}
	if !r.Generated.IsZero() {
		d.Generated = r.Generated.UTC().Format("2006-01-02 15:04 UTC")
	}
	if !r.Start.IsZero() || !r.End.IsZero() {
		d.Range = r.Start.UTC().Format(time.DateTime) + " – " + r.End.UTC().Format(time.DateTime) + " UTC"
	}
	links := seriesNames(r.Series)
	for _, t := range r.Summary {
		td := tableData{Title: t.Title, Columns: t.Columns, Note: t.Note}
		for _, row := range t.Rows {
			rd := rowData{Name: row.Name, Link: links[row.Name]}
			for _, v := range row.Values {
				rd.Cells = append(rd.Cells, tableNumber(v))
			}
			td.Rows = append(td.Rows, rd)
		}
		d.Tables = append(d.Tables, td)
	}
	for i := range r.Series {
		c := newChartData(&r.Series[i], "s"+strconv.Itoa(i+1))
		c.NewGroup = c.Group != "" && (i == 0 || c.Group != d.Charts[i-1].Group)
		d.Charts = append(d.Charts, c)
	}
	return d
}

func newChartData(s *Series, id string) chartData {
	c := chartData{
		ID:     id,
		Rule:   s.Rule,
		Labels: formatLabels(s.Labels),
		Points: len(s.Timestamps),
	}
	c.Group, c.Short = navName(s)
	keys := make([]string, 0, len(s.Metrics))
	for k := range s.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.Metrics = append(c.Metrics, metricData{k, compactNumber(s.Metrics[k])})
	}
	c.Legend = legendData{
		HasActual: anyFinite(s.Actual),
		HasMedian: anyFinite(s.Median),
		HasBand:   anyFinite(s.Lower) && anyFinite(s.Upper),
		HasScore:  anyFinite(s.Score),
		Band:      bandLabel(s.LowerLevel, s.UpperLevel),
		Windows:   len(s.Windows),
		Detected:  len(s.Detections),
	}
	if !math.IsNaN(s.Threshold) && !math.IsInf(s.Threshold, 0) {
		c.Legend.Threshold = compactNumber(s.Threshold)
	}
	if len(s.Timestamps) == 0 {
		c.Empty = true
		return c
	}
	svg, clipped := chartSVG(s, id)
	c.SVG = template.HTML(svg) // #nosec: numbers and fixed words only, see chartSVG.
	c.Legend.Clipped = clipped
	return c
}

// formatLabels writes labels the way PromQL does, __name__ first:
// name{a="1", b="2"}.
func formatLabels(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ls["__name__"])
	if len(keys) == 0 {
		return b.String()
	}
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + strconv.Quote(ls[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// navName splits a series' name for the contents: a CSV file's folder
// and base name (NAB's 58 files share long prefixes that would leave only
// "realAWSCloudwatch/ec2_…" visible), or else the rule and the labels.
func navName(s *Series) (group, name string) {
	if f := s.Labels["file"]; f != "" {
		if i := strings.LastIndexByte(f, '/'); i >= 0 {
			return f[:i], strings.TrimSuffix(f[i+1:], ".csv")
		}
		return "", strings.TrimSuffix(f, ".csv")
	}
	if l := formatLabels(s.Labels); l != "" {
		return s.Rule, l
	}
	return "", s.Rule
}

// seriesNames maps each name a summary row may use for a series (its
// file, its labels, its rule with labels) to the series' chart id; names
// shared by several series are left out, so a link is never a guess.
func seriesNames(ss []Series) map[string]string {
	ids := map[string]string{}
	seen := map[string]int{}
	for i, s := range ss {
		id := "s" + strconv.Itoa(i+1)
		l := formatLabels(s.Labels)
		names := []string{l, s.Rule + l, s.Rule + " " + l}
		if f := s.Labels["file"]; f != "" {
			names = append(names, f)
		}
		for _, n := range uniq(names) {
			if n != "" {
				seen[n]++
				ids[n] = id
			}
		}
	}
	for n, k := range seen {
		if k > 1 {
			delete(ids, n)
		}
	}
	return ids
}

func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		dup := false
		for _, o := range out {
			dup = dup || o == s
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

// bandLabel names the band by its levels: "5–95 % band".
func bandLabel(lo, hi float64) string {
	ok := func(v float64) bool { return v > 0 && v < 1 }
	if !ok(lo) || !ok(hi) {
		return "band"
	}
	pct := func(v float64) string { return strconv.FormatFloat(math.Round(v*1000)/10, 'f', -1, 64) }
	return pct(lo) + "–" + pct(hi) + " % band"
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"inc": func(i int) int { return i + 1 },
}).Parse(pageTemplate))

const pageTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root{--fg:#1f2328;--muted:#59636e;--line:#d8dee4;--bg:#fff;--panel:#f6f8fa;
--act:#3b3b3b;--med:#1f6feb;--band:#b6d4f5;--score:#e8710a;--thr:#a54a00;--win:#f8d3cf;--det:#d1242f}
*{box-sizing:border-box}
html{scroll-behavior:smooth}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
.layout{display:flex;align-items:flex-start}
nav{position:sticky;top:0;flex:0 0 250px;max-height:100vh;min-height:100vh;overflow-y:auto;padding:16px 12px 16px 16px;border-right:1px solid var(--line);background:var(--panel);font-size:12.5px}
nav h2{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:12px 0 6px}
nav ol{list-style:none;margin:0;padding:0}
nav li a{display:block;padding:2px 6px;border-radius:4px;color:var(--fg);text-decoration:none;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
nav li a:hover{background:#e7ecf0}
nav li.grp{color:var(--muted);font-size:11px;margin:8px 0 2px 6px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td a{color:inherit;text-decoration:none;border-bottom:1px dotted var(--muted)}
td a:hover{color:var(--med);border-bottom-color:var(--med)}
nav .n{color:var(--muted);font-variant-numeric:tabular-nums;display:inline-block;min-width:2.2em}
main{flex:1;min-width:0;padding:20px 28px 48px;max-width:1240px}
header h1{font-size:22px;margin:0 0 4px}
.meta{color:var(--muted);font-size:12.5px;margin:0}
.meta code{font-size:12px;background:var(--panel);padding:1px 4px;border-radius:3px;word-break:break-all}
h2.section{font-size:16px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.tables{display:flex;flex-wrap:wrap;gap:16px 28px}
.tbl{flex:0 1 auto;max-width:100%;overflow-x:auto}
.tbl h3{font-size:14px;margin:8px 0 6px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{font-weight:600;color:var(--muted);border-bottom:2px solid var(--line)}
tbody tr:hover{background:var(--panel)}
.note{color:var(--muted);font-size:12.5px;max-width:70ch;margin:6px 0 0}
section.series{margin:26px 0 8px;scroll-margin-top:8px}
.series h3{font-size:14.5px;margin:0;font-weight:600;word-break:break-all}
.series h3 .num{color:var(--muted);font-weight:400;margin-right:6px}
.series h3 .labels{font-weight:400;color:var(--muted);font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.metrics{font-size:12.5px;color:var(--muted);margin:2px 0 4px;font-variant-numeric:tabular-nums}
.metrics b{color:var(--fg);font-weight:600}
.metrics span+span::before{content:"·";margin:0 6px;color:#aab}
.legend{display:flex;flex-wrap:wrap;gap:4px 13px;font-size:12px;color:var(--muted);margin:4px 0 2px;padding-left:56px}
.legend i{display:inline-block;vertical-align:middle;margin-right:5px}
.k-act{width:18px;height:0;border-top:1.5px solid var(--act)}
.k-med{width:18px;height:0;border-top:2px solid var(--med)}
.k-band{width:18px;height:10px;background:var(--band)}
.k-score{width:18px;height:0;border-top:2px solid var(--score)}
.k-thr{width:18px;height:0;border-top:1.5px dashed var(--thr)}
.k-win{width:14px;height:10px;background:var(--win)}
.k-det{width:6px;height:6px;border-radius:50%;background:var(--det)}
svg.chart{display:block;width:100%;min-width:720px;height:auto;font-family:inherit}
section.series{overflow-x:auto}
.chart text{font-size:11px;fill:var(--muted);font-variant-numeric:tabular-nums}
.chart .ylab text{text-anchor:end}
.chart .xlab text{text-anchor:middle}
.chart .xlab .date{font-weight:600;fill:var(--fg)}
.chart .empty{text-anchor:middle;font-size:13px}
.grid{stroke:#eceff2;stroke-width:1;fill:none}
.frame{fill:none;stroke:var(--line);stroke-width:1}
.win{fill:var(--win);opacity:.75}
.band{fill:var(--band);opacity:.8;stroke:none}
.act,.med,.score{fill:none;stroke-linejoin:round;stroke-linecap:round}
.act{stroke:var(--act);stroke-width:1}
.med{stroke:var(--med);stroke-width:1.4}
.score{stroke:var(--score);stroke-width:1.2}
.pt{stroke-width:4}
.thr{stroke:var(--thr);stroke-width:1.2;stroke-dasharray:5 4;fill:none}
.det{stroke:var(--det);stroke-width:4.5;stroke-linecap:round;fill:none}
.rug{stroke:var(--det);stroke-width:1.2;fill:none}
.nodata{color:var(--muted);font-style:italic;padding:12px 0 12px 56px}
a.top{font-size:12px;color:var(--muted);text-decoration:none;margin-left:8px;font-weight:400}
@media (max-width:900px){.layout{display:block}nav{position:static;max-height:none;border-right:0;border-bottom:1px solid var(--line)}}
@media print{nav{display:none}section.series{break-inside:avoid}}
</style>
</head>
<body>
<div class="layout">
<nav aria-label="Contents">
<h2>Contents</h2>
<ol>
<li><a href="#summary">Summary</a></li>
</ol>
{{- if .Charts}}
<h2>Series ({{len .Charts}})</h2>
<ol>
{{- range $i, $c := .Charts}}
{{- if $c.NewGroup}}
<li class="grp">{{$c.Group}}</li>
{{- end}}
<li><a href="#{{$c.ID}}" title="{{$c.Rule}} {{$c.Labels}}"><span class="n">{{inc $i}}</span>{{$c.Short}}</a></li>
{{- end}}
</ol>
{{- end}}
</nav>
<main id="top">
<header>
<h1>{{.Title}}</h1>
{{- if .Range}}
<p class="meta">Replayed {{.Range}}{{if .Generated}} · generated {{.Generated}}{{end}}</p>
{{- else if .Generated}}
<p class="meta">Generated {{.Generated}}</p>
{{- end}}
{{- if .Command}}
<p class="meta">Command: <code>{{.Command}}</code></p>
{{- end}}
</header>
<h2 class="section" id="summary">Summary</h2>
{{- if not .Tables}}
<p class="note">No summary numbers.</p>
{{- end}}
<div class="tables">
{{- range .Tables}}
<div class="tbl">
{{- if .Title}}<h3>{{.Title}}</h3>{{end}}
<table>
{{- if .Columns}}
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
{{- end}}
<tbody>
{{- range .Rows}}
<tr><td>{{if .Link}}<a href="#{{.Link}}">{{.Name}}</a>{{else}}{{.Name}}{{end}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
{{- if .Note}}<p class="note">{{.Note}}</p>{{end}}
</div>
{{- end}}
</div>
{{- if .Charts}}
<h2 class="section">Series</h2>
<p class="note">Each chart: the actual values, the median forecast and its band above; the anomaly score and the detection threshold below. Labelled anomaly windows are shaded red, detections marked with red dots (on the value) and ticks (under the score). Times are UTC.</p>
{{- end}}
{{- range $i, $c := .Charts}}
<section class="series" id="{{$c.ID}}">
<h3><span class="num">{{inc $i}}.</span>{{if $c.Rule}}{{$c.Rule}} {{end}}<span class="labels">{{$c.Labels}}</span> <a class="top" href="#top">↑ top</a></h3>
{{- if $c.Metrics}}
<div class="metrics">{{range $c.Metrics}}<span>{{.Name}} <b>{{.Value}}</b></span>{{end}}</div>
{{- end}}
{{- if $c.Empty}}
<p class="nodata">No evaluations in this range.</p>
{{- else}}
<div class="legend">
{{- if $c.Legend.HasActual}}
<span><i class="k-act"></i>actual</span>
{{- end}}
{{- if $c.Legend.HasMedian}}
<span><i class="k-med"></i>median forecast</span>
{{- end}}
{{- if $c.Legend.HasBand}}
<span><i class="k-band"></i>{{$c.Legend.Band}}{{if $c.Legend.Clipped}} (clipped){{end}}</span>
{{- end}}
{{- if $c.Legend.HasScore}}
<span><i class="k-score"></i>anomaly score</span>
{{- end}}
{{- if $c.Legend.Threshold}}
<span><i class="k-thr"></i>threshold {{$c.Legend.Threshold}}</span>
{{- end}}
<span><i class="k-win"></i>labelled window{{if ne $c.Legend.Windows 1}}s{{end}} ({{$c.Legend.Windows}})</span>
<span><i class="k-det"></i>detection{{if ne $c.Legend.Detected 1}}s{{end}} ({{$c.Legend.Detected}})</span>
<span>{{$c.Points}} point{{if ne $c.Points 1}}s{{end}} · times UTC</span>
</div>
{{$c.SVG}}
{{- end}}
</section>
{{- end}}
</main>
</div>
</body>
</html>
`
