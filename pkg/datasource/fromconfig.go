package datasource

import (
	"errors"
	"fmt"
	"time"

	"github.com/openanomaly/openanomaly/pkg/config"
)

// FromConfig returns the Querier the datasource section asks for. userAgent
// is sent with every request.
func FromConfig(cfg config.DatasourceConfig, userAgent string) (Querier, error) {
	switch cfg.ReadMethod {
	case "", config.ReadQueryRange:
		if cfg.URL == nil || cfg.URL.URL == nil {
			return nil, errors.New("datasource url is required")
		}
		return NewHTTPQuerier(HTTPOptions{
			URL:              cfg.URL.String(),
			HTTPClientConfig: cfg.HTTPClientConfig,
			Timeout:          time.Duration(cfg.QueryTimeout),
			UserAgent:        userAgent,
		})
	case config.ReadRemoteRead:
		return nil, errors.New("datasource read_method remote_read is not implemented yet; use query_range")
	default:
		return nil, fmt.Errorf("datasource read_method %q is unknown; want %q or %q",
			cfg.ReadMethod, config.ReadQueryRange, config.ReadRemoteRead)
	}
}
