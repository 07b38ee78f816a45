package builtin

import (
	"sync"
	"time"
)

// fitCache keeps each series' fitted Holt-Winters parameters between
// requests, keyed by forecast.Request.Keys. Fitting searches about ten
// passes over the history; running a fitted model is one. So a sidecar that
// evaluates every minute fits each series about once per refit interval and
// otherwise only runs the model over the newest history, the way vmanomaly
// separates fit_every from infer_every.
//
// Parameters fitted on data up to one time are used for later data only:
// nothing is looked ahead. What ages them is the request's Time, so a replay
// refits on the same schedule as the daemon did.
type fitCache struct {
	mtx       sync.Mutex
	entries   map[uint64]fitEntry
	lastSweep time.Time
}

type fitEntry struct {
	step   time.Duration
	period int
	params hwFit
	at     time.Time
}

// hwFit is the outcome of a fit: the season and the smoothing parameters.
type hwFit struct{ alpha, betaStar, gammaStar, phi float64 }

func newFitCache() *fitCache { return &fitCache{entries: map[uint64]fitEntry{}} }

// get returns the entry for key if it was fitted at a step of step, no
// longer than maxAge before now, and not after now.
func (c *fitCache) get(key uint64, step time.Duration, now time.Time, maxAge time.Duration) (fitEntry, bool) {
	c.mtx.Lock()
	e, ok := c.entries[key]
	c.mtx.Unlock()
	if !ok || e.step != step || now.Before(e.at) || now.Sub(e.at) >= maxAge {
		return fitEntry{}, false
	}
	return e, true
}

func (c *fitCache) put(key uint64, e fitEntry) {
	c.mtx.Lock()
	c.entries[key] = e
	c.mtx.Unlock()
}

// sweep forgets entries too old to be used again, at most once per maxAge,
// so that series that went away do not accumulate.
func (c *fitCache) sweep(now time.Time, maxAge time.Duration) {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	if now.Sub(c.lastSweep) < maxAge && !now.Before(c.lastSweep) {
		return
	}
	c.lastSweep = now
	for k, e := range c.entries {
		if now.Sub(e.at) >= maxAge || now.Before(e.at) {
			delete(c.entries, k)
		}
	}
}

// len is the number of entries, for tests.
func (c *fitCache) len() int {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	return len(c.entries)
}
