package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkTracking measures tracking requests/s through the full handler
// tree (token verification, machine check, event build, publish to an
// in-memory publisher, response) with httptest.
func BenchmarkTracking(b *testing.B) {
	for _, kind := range []string{"open", "click"} {
		b.Run(kind, func(b *testing.B) {
			bu := trkSetup(b)
			target := pathOf(bu.urls.Open(bu.ref))
			want := http.StatusOK
			if kind == "click" {
				target = pathOf(bu.urls.Click(bu.ref, 1, "https://example.com/pricing"))
				want = http.StatusFound
			}
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("GET", target, nil)
					req.Header.Set("User-Agent", "Mozilla/5.0")
					w := httptest.NewRecorder()
					bu.srv.ServeHTTP(w, req)
					if w.Code != want {
						b.Errorf("status %d", w.Code)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			bu.pub.mu.Lock()
			bu.pub.evs = nil
			bu.pub.mu.Unlock()
		})
	}
}
