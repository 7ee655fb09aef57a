package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newHealthcheckCmd() *cobra.Command {
	cfg := DefaultConfig()
	var path string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the local server answers /readyz (for container health checks)",
		Long: `Ask the Nurture HTTP server at NURTURE_HTTP_ADDR whether it is ready
(GET /readyz) and exit 0 when it is, 1 when it is not. Container images
without a shell or curl use it as their health check. A wildcard listen
address (0.0.0.0, [::]) is reached through the loopback address.`,
		Example: `  nurture healthcheck
  nurture healthcheck --path /livez
  # docker-compose.yml:
  #   healthcheck: { test: ["CMD", "/nurture", "healthcheck"], interval: 5s }`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, &cfg); err != nil {
				return err
			}
			u := "http://" + loopbackAddr(cfg.HTTPAddr) + path
			ctx, cancel := contextWithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("healthcheck %s: %w", u, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
			}
			fmt.Fprint(cmd.OutOrStdout(), string(body))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "/readyz", "path to ask")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	configFlags(cmd, &cfg, "http-addr")
	return cmd
}

// loopbackAddr turns a wildcard listen address into one a client can dial.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
