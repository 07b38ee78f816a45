package backtest

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows how many evaluations are done: a bar redrawn in place on a
// terminal, a plain line every logEvery otherwise (logs, CI).
type progress struct {
	w     io.Writer
	tty   bool
	total int64
	done  atomic.Int64
	start time.Time

	mu    sync.Mutex
	last  time.Time
	drawn int64 // evaluations shown by the last draw
}

const (
	redrawEvery = 200 * time.Millisecond
	logEvery    = 10 * time.Second
	barWidth    = 30
)

func newProgress(w io.Writer, tty bool, total int) *progress {
	return &progress{w: w, tty: tty, total: int64(total), start: time.Now(), last: time.Now()}
}

// add counts n evaluations and redraws when it is time.
func (p *progress) add(n int64) {
	if p == nil || p.w == nil {
		return
	}
	d := p.done.Add(n)
	every := logEvery
	if p.tty {
		every = redrawEvery
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.last) < every && d != p.total {
		return
	}
	p.last = now
	p.draw(d, now)
}

func (p *progress) draw(d int64, now time.Time) {
	p.drawn = d
	frac := 1.0
	if p.total > 0 {
		frac = float64(d) / float64(p.total)
	}
	elapsed := now.Sub(p.start)
	rate := float64(d) / max(elapsed.Seconds(), 1e-9)
	eta := "?"
	if d >= p.total {
		eta = "0s"
	} else if rate > 0 {
		eta = time.Duration(float64(p.total-d) / rate * float64(time.Second)).Round(time.Second).String()
	}
	if p.tty {
		n := int(frac * barWidth)
		fmt.Fprintf(p.w, "\r[%s%s] %5.1f%% %d/%d evaluations, %.0f/s, ETA %s ",
			strings.Repeat("=", n), strings.Repeat(" ", barWidth-n), 100*frac, d, p.total, rate, eta)
		return
	}
	fmt.Fprintf(p.w, "backtest: %d/%d evaluations (%.1f%%), %.0f/s, ETA %s\n", d, p.total, 100*frac, rate, eta)
}

// finish draws the final state and ends the bar's line.
func (p *progress) finish() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.done.Load(); d != p.drawn {
		p.draw(d, time.Now())
	}
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
