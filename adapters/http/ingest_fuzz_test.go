package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
)

// FuzzFromSegment: any input either maps to a complete lead event or is
// refused as invalid; it never panics.
func FuzzFromSegment(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","userId":"u1","event":"Signed Up","messageId":"m1","properties":{"a":1}}`,
		`{"userId":7,"traits":{"email":"a@b.c","n":1.5},"timestamp":"2026-01-01T00:00:00Z"}`,
		`{"anonymousId":"x","name":"Home","context":{"traits":{"email":5}}}`,
		`{"type":"alias"}`, `[]`, `null`, `{"userId":{"a":1}}`,
	} {
		f.Add(s, "track")
		f.Add(s, "batch")
	}
	f.Fuzz(func(t *testing.T, body, route string) {
		ev, _, err := fromSegment([]byte(body), route)
		if err != nil {
			if !errors.Is(err, cloudevent.ErrInvalid) {
				t.Fatalf("error not marked invalid: %v", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" || ev.Lead == "" {
			t.Fatalf("incomplete event %+v from %q", ev, body)
		}
	})
}

type nopPublisher struct{}

func (nopPublisher) PublishEvent(context.Context, *engine.Event) error { return nil }

// FuzzIngestEvents: the events endpoint answers every body with one of its
// documented statuses.
func FuzzIngestEvents(f *testing.F) {
	f.Add(`{"specversion":"1.0","id":"e","type":"t","subject":"s"}`, "application/cloudevents+json")
	f.Add(`[{"specversion":"1.0","id":"e","type":"t","subject":"s"},1]`, "application/cloudevents-batch+json")
	f.Add(`[`, "application/json")
	srv := New(Config{MaxBody: 64 << 10, Ingest: &IngestConfig{Publisher: nopPublisher{}, Tokens: []string{"fuzz-token-1"}}})
	f.Fuzz(func(t *testing.T, body, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer fuzz-token-1")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("status %d for %q (%s)", rec.Code, body, contentType)
		}
	})
}
