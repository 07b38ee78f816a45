package forecast

import (
	"context"
	"slices"
	"testing"
)

type nopModel struct{ id int }

func (nopModel) Forecast(context.Context, Request) ([]Forecast, error) { return nil, nil }

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	if got := r.Names(); len(got) != 0 {
		t.Fatalf("new registry names = %v, want none", got)
	}
	a, b := nopModel{1}, nopModel{2}
	if err := r.Register(DefaultName, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("chronos", b); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		model Model
		ok    bool // whether Register succeeds
	}{
		{DefaultName, b, false}, // duplicate
		{"", a, false},
		{"x", nil, false},
		{"y", a, true},
	}
	for _, tc := range cases {
		err := r.Register(tc.name, tc.model)
		if (err == nil) != tc.ok {
			t.Errorf("Register(%q) err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if m, ok := r.Get(DefaultName); !ok || m != Model(a) {
		t.Errorf("Get(default) = %v, %v; want the first registration", m, ok)
	}
	if _, ok := r.Get("missing"); ok {
		t.Error("Get(missing) ok")
	}
	if got, want := r.Names(), []string{"chronos", DefaultName, "y"}; !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
}
