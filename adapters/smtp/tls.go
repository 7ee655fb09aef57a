package smtp

import "crypto/tls"

func insecureTLS(host string) *tls.Config {
	return &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} // #nosec G402 -- opt-in (insecure_skip_verify) for tests
}
