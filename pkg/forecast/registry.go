package forecast

import (
	"fmt"
	"slices"
	"sync"
)

// DefaultName is the model name that always exists: the built-in default.
const DefaultName = "default"

// Registry maps the model names used in pipeline files to Models. It is safe
// for concurrent use; a reload builds a new Registry rather than mutating the
// running one.
type Registry struct {
	mu     sync.RWMutex
	models map[string]Model
}

// NewRegistry returns an empty Registry. The caller registers the built-in
// default under DefaultName.
func NewRegistry() *Registry {
	return &Registry{models: map[string]Model{}}
}

// Register adds m under name. It fails for an empty name, a nil model, or a
// name that is already taken: two config entries with one name are a config
// error, never a silent override.
func (r *Registry) Register(name string, m Model) error {
	if name == "" {
		return fmt.Errorf("register model: empty name")
	}
	if m == nil {
		return fmt.Errorf("register model %q: nil model", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.models[name]; ok {
		return fmt.Errorf("register model %q: name already registered", name)
	}
	r.models[name] = m
	return nil
}

// Get returns the model registered under name.
func (r *Registry) Get(name string) (Model, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.models[name]
	return m, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.models))
	for n := range r.models {
		names = append(names, n)
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}
