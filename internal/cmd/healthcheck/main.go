// Command healthcheck asks a running sidecar whether it is healthy, for the
// HEALTHCHECK of container images that have no shell and no curl (the CPU
// image is distroless): it exits 0 when GET URL answers 200 within the
// timeout, and 1 with the reason on standard error otherwise.
//
//	openanomaly-healthcheck [-timeout 3s] [URL]
//
// URL defaults to http://127.0.0.1:9095/-/healthy, the sidecar's default
// --web.listen-address. deploy/build.sh builds it next to the sidecar.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const defaultURL = "http://127.0.0.1:9095/-/healthy"

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "Give up after this long.")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-timeout 3s] [URL]\n\nURL defaults to %s.\n", os.Args[0], defaultURL)
		flag.PrintDefaults()
	}
	flag.Parse()
	url := defaultURL
	switch flag.NArg() {
	case 0:
	case 1:
		url = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err := check(context.Background(), url, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		os.Exit(1)
	}
}

// check returns nil when GET url answers 200 within timeout.
func check(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, body)
	}
	return nil
}
