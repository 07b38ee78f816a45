package datasource

import (
	"errors"
	"fmt"
	"time"

	"github.com/openanomaly/openanomaly/pkg/config"
)

// FromConfig returns the Querier the datasource section asks for. userAgent
// is sent with every request. With read_method remote_read the querier is a
// *RemoteReadQuerier, which also implements ExprChecker: callers should check
// every rule's expr with it before using the querier.
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
			SplitInterval:    time.Duration(cfg.SplitInterval),
			UserAgent:        userAgent,
		})
	case config.ReadRemoteRead:
		if cfg.RemoteReadURL == nil || cfg.RemoteReadURL.URL == nil {
			return nil, errors.New("datasource remote_read_url is required with read_method remote_read")
		}
		return NewRemoteReadQuerier(RemoteReadOptions{
			URL:              cfg.RemoteReadURL.String(),
			HTTPClientConfig: cfg.HTTPClientConfig,
			Timeout:          time.Duration(cfg.QueryTimeout),
			UserAgent:        userAgent,
		})
	default:
		return nil, fmt.Errorf("datasource read_method %q is unknown; want %q or %q",
			cfg.ReadMethod, config.ReadQueryRange, config.ReadRemoteRead)
	}
}
