package testenv

import "testing"

// StartNodeExporter starts node_exporter with its default collectors and
// returns its metrics URL (http://127.0.0.1:port/metrics) once that answers
// 200. extraArgs are appended to the command line.
func StartNodeExporter(t testing.TB, extraArgs ...string) string {
	t.Helper()
	bin := lookBinary(t, "OPENANOMALY_NODE_EXPORTER", "prometheus-node-exporter", "prometheus-node-exporter", "node_exporter")
	dir := t.TempDir()
	_, base := startServer(t, "node-exporter", bin, dir, "/metrics", func(addr string) []string {
		return append([]string{"--web.listen-address=" + addr}, extraArgs...)
	})
	return base + "/metrics"
}
