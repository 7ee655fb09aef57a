package httpapi_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
)

const chromiumPath = "/usr/bin/chromium"

// browser starts headless Chromium for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if testing.Short() {
			t.Skipf("skipping the browser test in -short mode: %s is missing (apt-get install -y chromium chromium-driver)", chromiumPath)
		}
		t.Fatalf("%s is missing: install it with `apt-get update && apt-get install -y chromium chromium-driver`, or run with -short to skip", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// The lead page renders in a real browser: the screenshot is a PNG, the
// page shows the lead, its score, its rep and the chart; the acknowledge
// button works without JavaScript.
func TestLeadPageInChromium(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, false)
	ctx := browser(t)

	v, err := b.views.Build(leadview.Input{Lead: &engine.Lead{Key: "lead-1"}, Now: b.now})
	require.NoError(t, err)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(v.LeadURL),
		chromedp.WaitVisible(chromedp.ID("score-chart")),
	))
	text := func(id string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		require.NoError(t, err, "text of #%s", id)
		return s
	}
	name, score, owner := text("lead-name"), text("score"), text("owner")
	escalation, timeline := text("escalation"), text("timeline")
	marks, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#score-chart circle").length`))
	require.NoError(t, err)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.Equal(t, "Ada Lovelace", name)
	require.Equal(t, "70.97", score)
	require.Equal(t, "Sam Rivera", owner)
	require.Contains(t, escalation, "lead-1.escalation-1")
	require.Contains(t, escalation, "waiting for acknowledgement")
	require.Contains(t, timeline, "+60 demo.requested (rule demo)")
	require.Contains(t, timeline, "Escalated to Sam Rivera")
	require.Equal(t, 2, marks, "one chart marker per score change")

	path := filepath.Join(t.TempDir(), "lead.png")
	require.NoError(t, os.WriteFile(path, shot, 0o600))
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err, "the screenshot is a PNG")
	require.Greater(t, img.Bounds().Dx(), 600)
	require.Greater(t, img.Bounds().Dy(), 600, "the full page, timeline included")
	t.Logf("screenshot: %s (%dx%d)", path, img.Bounds().Dx(), img.Bounds().Dy())
	if dir := os.Getenv("NURTURE_SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "lead-page.png"), shot, 0o644))
	}

	// Acknowledge from the page: link → confirmation → form POST.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("a.btn")),
		chromedp.WaitVisible(chromedp.CSS("form button")),
		chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.ID("message")),
	))
	done, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("message")))
	require.NoError(t, err)
	require.True(t, strings.Contains(done, "the lead is yours"), done)
	evs := b.pub.all()
	require.Len(t, evs, 1)
	require.Equal(t, engine.EventEscalationAcked, evs[0].Type)
	require.Equal(t, "sam", evs[0].Properties["rep"])
}
