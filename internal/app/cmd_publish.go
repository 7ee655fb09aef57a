package app

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/internal/cloudevent"
)

func newPublishCmd() *cobra.Command {
	cfg := DefaultConfig()
	var (
		typ, lead, email, traits, properties, id, at, source string
		timeout                                              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "publish --type TYPE --lead KEY",
		Short: "Publish one lead event to NATS (to try an installation by hand)",
		Long: `Publish one lead event, as a CloudEvent, to the LEADS stream (subject
leads.<type>) and wait until JetStream stored it. Prints the event id and its
stream sequence. Publishing the same --id twice is harmless: the stream and
the workers drop the duplicate.

The stream is created by "nurture serve" (or "nurture dev") at start; run one
first.`,
		Example: `  nurture publish --type trial.started --lead lead-42 --email ana@example.com \
      --traits '{"first_name":"Ana","plan":"pro","timezone":"Europe/Lisbon"}'
  nurture publish --type page.viewed --lead lead-42 --properties '{"path":"/pricing"}'
  NURTURE_NATS_URL=nats://nats:4222 nurture publish --type demo.booked --lead lead-42 --id demo-42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, &cfg); err != nil {
				return err
			}
			if id == "" {
				id = newEventID()
			}
			env := cloudevent.Envelope{SpecVersion: "1.0", ID: id, Source: source, Type: typ, Subject: lead, Time: at,
				DataContentType: "application/json"}
			data := map[string]json.RawMessage{}
			if email != "" {
				b, _ := json.Marshal(email)
				data["email"] = b
			}
			for name, raw := range map[string]string{"traits": traits, "properties": properties} {
				if raw == "" {
					continue
				}
				if !json.Valid([]byte(raw)) || !bytes.HasPrefix(bytes.TrimSpace([]byte(raw)), []byte("{")) {
					return fmt.Errorf("--%s: want a JSON object, e.g. '{\"plan\":\"pro\"}'", name)
				}
				data[name] = json.RawMessage(raw)
			}
			env.Data, _ = json.Marshal(data)
			raw, err := json.Marshal(env)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			ev, err := cloudevent.Parse(raw)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			if ev.Time.IsZero() {
				ev.Time = time.Now().UTC()
			}
			body, err := cloudevent.Encode(ev, source)
			if err != nil {
				return err
			}

			ctx := cmd.Context()
			conn, err := natsadapter.Connect(ctx, natsadapter.Options{URL: cfg.resolveNATSURL(), Name: "nurture-publish"})
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			defer conn.Close()
			pctx, cancel := contextWithTimeout(ctx, timeout)
			defer cancel()
			subject := cloudevent.Subject(natsadapter.LeadsPrefix, ev.Type)
			ack, err := conn.JetStream().Publish(pctx, subject, body, jetstream.WithMsgID(ev.ID))
			if err != nil {
				return fmt.Errorf("publish %s to %s: %w (is the %s stream there? \"nurture serve\" creates it)",
					ev.ID, subject, err, natsadapter.LeadsStream)
			}
			dup := ""
			if ack.Duplicate {
				dup = " (duplicate: already in the stream)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %s to %s: stream %s sequence %d%s\n", ev.ID, subject, ack.Stream, ack.Sequence, dup)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "event type, e.g. trial.started (required)")
	f.StringVar(&lead, "lead", "", "the lead's key upstream: the CloudEvent subject (required)")
	f.StringVar(&email, "email", "", "the lead's email address")
	f.StringVar(&traits, "traits", "", "lead attributes to merge, as a JSON object")
	f.StringVar(&properties, "properties", "", "event details, as a JSON object")
	f.StringVar(&id, "id", "", "event id (default: random); reuse it to test deduplication")
	f.StringVar(&at, "time", "", "when it happened, RFC 3339 (default: now)")
	f.StringVar(&source, "source", "nurture-cli", "CloudEvents source attribute")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for JetStream's acknowledgement")
	_ = cmd.MarkFlagRequired("type")
	_ = cmd.MarkFlagRequired("lead")
	configFlags(cmd, &cfg, "nats-url")
	return cmd
}

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
