package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/adapters/sqlite"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// devRun is one `nurture dev` running in-process through the cobra root,
// with an environment of its own (no NURTURE_* from the test process).
type devRun struct {
	addr   string
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startDev(t *testing.T, args ...string) *devRun {
	t.Helper()
	addr := freeAddr(t)
	r := &devRun{addr: addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(withEnv(context.Background(), func(string) string { return "" }))
	r.cancel = cancel
	root := newRootCmd()
	root.SetArgs(append([]string{"dev", "--http-addr", addr, "--nats-port", "-1"}, args...))
	root.SetOut(r.stdout)
	root.SetErr(r.stderr)
	started := time.Now()
	go func() { r.done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "dev did not become ready; stderr:\n%s", r.stderr.String())
	t.Logf("nurture dev ready in %s", time.Since(started).Round(time.Millisecond))
	return r
}

// stop cancels the run (like Ctrl-C) and waits for a clean exit.
func (r *devRun) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		require.NoError(t, err, "dev exited with an error; stderr:\n%s", r.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("dev did not stop within 20s")
	}
}

// capturedIDs reads the Message-ID of every captured .eml file and of every
// delivery recorded in the capture index (a resend appends a line).
func capturedIDs(t *testing.T, dir string) (files map[string]string, deliveries []string) {
	t.Helper()
	files = map[string]string{}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^Message-Id: <([^>]+)>`).FindSubmatch(bytes.ReplaceAll(b, []byte("Message-ID"), []byte("Message-Id")))
		require.NotNil(t, m, "no Message-ID in %s", e.Name())
		files[e.Name()] = string(m[1])
	}
	f, err := os.Open(filepath.Join(dir, "index.jsonl"))
	if os.IsNotExist(err) {
		return files, nil
	}
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			MessageID string `json:"message_id"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		deliveries = append(deliveries, e.MessageID)
	}
	return files, deliveries
}

// demoFacts is what the demo did, read from the store's history.
type demoFacts struct {
	clicks, scoreChanges, escalations, emails int
	history                                   int
}

func readFacts(t *testing.T, dataDir string) demoFacts {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "nurture.db"))
	require.NoError(t, err)
	defer st.Close()
	leads, err := st.RecentLeads(ctx, 1000)
	require.NoError(t, err)
	var f demoFacts
	for _, l := range leads {
		hist, err := st.History(ctx, l.Key, 0)
		require.NoError(t, err)
		f.history += len(hist)
		for _, h := range hist {
			switch h.Kind {
			case "score.changed":
				f.scoreChanges++
			case "escalated":
				f.escalations++
			case "email.sent":
				f.emails++
			case "event":
				var d struct {
					Type    string `json:"type"`
					Machine bool   `json:"machine"`
				}
				require.NoError(t, json.Unmarshal(h.Data, &d))
				if d.Type == engine.EventEmailClicked && !d.Machine {
					f.clicks++
				}
			}
		}
	}
	items, err := st.ListOutbox(ctx, store.OutboxFilter{Kind: store.KindEmail, Limit: 10000})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, it := range items {
		require.False(t, seen[it.DedupeKey], "email %s enqueued twice", it.DedupeKey)
		seen[it.DedupeKey] = true
	}
	return f
}

func leadJSON(t *testing.T, base, token, key string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/leads/"+key, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var v map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v
}

// TestDevDemo runs `nurture dev --demo` in-process on real parts (embedded
// NATS JetStream, SQLite, the capture mailer, the HTTP server): within a
// bounded time an email is captured, a click, a score change and an
// escalation are in the store; a restart on the same data directory
// continues without capturing any email twice; the captured-mail page and
// a lead page render in headless Chromium. README.md's `dev --demo`
// command is covered here (see readme_test.go).
func TestDevDemo(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	mailDir := filepath.Join(dataDir, "mail")
	args := []string{"--demo", "--speed", "10000", "--data-dir", dataDir}

	// Run 1: until the demo showed everything the README promises.
	r := startDev(t, args...)
	base := "http://" + r.addr
	tokenBytes, err := os.ReadFile(filepath.Join(dataDir, "api-token"))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tokenBytes))
	require.Contains(t, r.stdout.String(), base+"/mail", "the banner names the captured-mail page")
	require.Contains(t, r.stdout.String(), "Bearer "+token, "the banner prints the dev API token")

	deadline := time.Now().Add(60 * time.Second)
	var escalated bool
	for time.Now().Before(deadline) {
		files, _ := capturedIDs(t, mailDir)
		if v := leadJSON(t, base, token, "lead-1"); v != nil && len(files) > 0 {
			if esc, ok := v["escalation"].(map[string]any); ok && esc["id"] != nil {
				escalated = true
			}
		}
		out := r.stdout.String()
		if escalated && strings.Contains(out, "👆 clicked") && strings.Contains(out, "★ score") && strings.Contains(out, "🔥 escalated") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.True(t, escalated, "lead-1 was not escalated in time; console:\n%s\nstderr:\n%s", tail(r.stdout.String(), 3000), r.stderr.String())
	out := r.stdout.String()
	require.Regexp(t, `(?m)^\w{3} \d{2} \d{2}:\d{2} \S+\s+lead-\d+ \(\S+\)\s+✉ trial-welcome  trial-onboarding/welcome$`, out,
		"console lines say when, who, what, sequence and step")

	// README.md's curl and publish commands, against this running dev.
	t.Run("ReadmeEvents", func(t *testing.T) { readmeEvents(t, r, token) })

	// The pages, in a real browser, while it runs.
	t.Run("Chromium", func(t *testing.T) { checkDevPages(t, base) })

	r.stop(t)
	facts1 := readFacts(t, dataDir)
	files1, deliveries1 := capturedIDs(t, mailDir)
	t.Logf("run 1: %d emails captured, %+v", len(files1), facts1)
	require.NotEmpty(t, files1, "at least one email captured")
	require.GreaterOrEqual(t, facts1.clicks, 1, "at least one click applied (through the tracking endpoint)")
	require.GreaterOrEqual(t, facts1.scoreChanges, 1, "at least one score change")
	require.GreaterOrEqual(t, facts1.escalations, 1, "at least one escalation")
	require.Len(t, deliveries1, len(files1), "each captured email delivered once")
	clock1, err := os.ReadFile(filepath.Join(dataDir, "clock"))
	require.NoError(t, err)

	// Run 2 on the same data directory: it continues where it stopped
	// and writes no email twice.
	r = startDev(t, args...)
	require.Contains(t, r.stdout.String(), "now "+mustClock(t, clock1).Format("Mon Jan 02"), "the clock resumes where it stopped")
	time.Sleep(4 * time.Second)
	r.stop(t)
	facts2 := readFacts(t, dataDir)
	files2, deliveries2 := capturedIDs(t, mailDir)
	t.Logf("run 2: %d emails captured, %+v", len(files2), facts2)
	for name, id := range files1 {
		require.Equal(t, id, files2[name], "captured email %s kept", name)
	}
	seen := map[string]bool{}
	for _, id := range deliveries2 {
		require.False(t, seen[id], "email %s captured twice", id)
		seen[id] = true
	}
	require.Greater(t, facts2.history, facts1.history, "state continued after the restart")
	require.GreaterOrEqual(t, len(files2), len(files1))
	clock2, err := os.ReadFile(filepath.Join(dataDir, "clock"))
	require.NoError(t, err)
	require.True(t, mustClock(t, clock2).After(mustClock(t, clock1)), "the clock went on")
}

func mustClock(t *testing.T, b []byte) time.Time {
	t.Helper()
	c, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return c
}

const devChromium = "/usr/bin/chromium"

// checkDevPages renders the captured-mail list, one email and lead-1's
// page in headless Chromium, screenshots them and checks their content.
func checkDevPages(t *testing.T, base string) {
	if _, err := os.Stat(devChromium); err != nil {
		if testing.Short() {
			t.Skipf("%s is missing (apt-get install -y chromium); skipped with -short", devChromium)
		}
		t.Fatalf("%s is missing: apt-get update && apt-get install -y chromium chromium-driver (or -short to skip)", devChromium)
	}
	shots := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(devChromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 30*time.Second)
	defer cancelT()

	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(b))
		require.NoError(t, err, "%s: the screenshot is a PNG", name)
		require.Greater(t, img.Bounds().Dx(), 600)
		path := filepath.Join(shots, name+".png")
		require.NoError(t, os.WriteFile(path, b, 0o600))
		t.Logf("screenshot %s (%dx%d)", path, img.Bounds().Dx(), img.Bounds().Dy())
		if dir := os.Getenv("NURTURE_SCREENSHOT_DIR"); dir != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "dev-"+name+".png"), b, 0o644))
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, "text of %s", sel)
		return s
	}

	// The captured-mail page lists the emails with sequence, step and lead.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/mail"), chromedp.WaitVisible(chromedp.CSS("#mail"))))
	list := text("#mail")
	require.Contains(t, list, "trial-onboarding/welcome")
	require.Contains(t, list, "lead-1")
	require.Contains(t, list, "clicked", "the page shows clicks")
	require.Contains(t, list, "Hot lead:", "the page shows the rep's escalation email")
	require.Regexp(t, `score \d+`, list, "the page shows scores")
	shot("mail-list")

	// One email: headers, the sandboxed HTML preview and the text part.
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`Array.from(document.querySelectorAll("#mail tr")).find(tr => tr.textContent.includes("trial-onboarding/welcome")).querySelector('a[href^="/mail/"]').pathname`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+href), chromedp.WaitVisible(chromedp.CSS("#preview"))))
	require.Contains(t, text("#headers"), "List-Unsubscribe")
	require.NotEmpty(t, text("#subject"))
	sandbox, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#preview").getAttribute("sandbox")`))
	require.NoError(t, err)
	require.Equal(t, "allow-popups allow-popups-to-escape-sandbox", sandbox, "the HTML part runs sandboxed")
	shot("mail-message")

	// The preview document itself renders the email's HTML.
	resp, err := http.Get(base + href + "/html")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "sandbox")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	require.Contains(t, string(body), `<base target="_blank">`)

	// The lead list and lead-1's page: escalated, with an owner.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/leads"), chromedp.WaitVisible(chromedp.CSS("#leads"))))
	require.Contains(t, text("#leads"), "lead-1")
	shot("leads")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/leads/lead-1"), chromedp.WaitVisible(chromedp.CSS("#lead-name"))))
	owner := text("#owner")
	require.NotEmpty(t, strings.TrimSpace(owner), "lead-1 has a rep")
	require.Contains(t, text("#timeline"), "scalated")
	shot("lead-1")
}

// readmeEvents sends README.md's curl request and runs its publish command
// against a running dev, and checks both events reached lead-42.
func readmeEvents(t *testing.T, r *devRun, token string) {
	base := "http://" + r.addr
	curl := readmeCommand(t, "curl ")
	var method, target, body string
	hdr := http.Header{}
	for i := 1; i < len(curl.Words); i++ {
		switch w := curl.Words[i]; w {
		case "-X":
			method = curl.Words[i+1]
			i++
		case "-H":
			k, v, _ := strings.Cut(curl.Words[i+1], ":")
			hdr.Set(k, strings.TrimSpace(strings.ReplaceAll(v, "$TOKEN", token)))
			i++
		case "-d":
			body = curl.Words[i+1]
			i++
		default:
			target = w
		}
	}
	require.True(t, strings.HasPrefix(target, "http://127.0.0.1:8080/"), "the README posts to the default address")
	req, err := http.NewRequest(method, base+strings.TrimPrefix(target, "http://127.0.0.1:8080"), strings.NewReader(body))
	require.NoError(t, err)
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "README curl: %s %s", resp.Status, msg)

	m := regexp.MustCompile(`NATS\s+(nats://\S+)`).FindStringSubmatch(r.stdout.String())
	require.NotNil(t, m, "the banner names the NATS URL")
	args := nurtureArgs(readmeCommand(t, "nurture publish "))
	var out, errb bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	env := map[string]string{"NURTURE_NATS_URL": m[1]}
	require.NoError(t, cmd.ExecuteContext(withEnv(context.Background(), func(k string) string { return env[k] })),
		"README publish: %s", errb.String())

	var events int
	require.Eventually(t, func() bool {
		v := leadJSON(t, base, token, "lead-42")
		if v == nil {
			return false
		}
		events = 0
		tl, _ := v["timeline"].([]any)
		for _, e := range tl {
			if em, ok := e.(map[string]any); ok && em["kind"] == "event" {
				events++
			}
		}
		return events >= 2
	}, 10*time.Second, 50*time.Millisecond, "lead-42 did not get the README's two events")
}

// With an SMTP URL, dev sends the demo's email to that server instead of
// capturing it, and has no captured-mail page.
func TestDevDemoSMTP(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	r := startDev(t, "--demo", "--speed", "10000", "--data-dir", dataDir, "--smtp-url", sink.URL())
	require.Contains(t, r.stdout.String(), "Mail           sent to smtp://")
	msgs := sink.Wait(2, 30*time.Second)
	require.GreaterOrEqual(t, len(msgs), 2, "stderr:\n%s", r.stderr.String())
	require.Contains(t, string(msgs[0].Data), "List-Unsubscribe")
	resp, err := http.Get("http://" + r.addr + "/mail")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "no captured-mail page when mail is sent")
	_, err = os.Stat(filepath.Join(dataDir, "mail"))
	require.True(t, os.IsNotExist(err), "nothing captured")
	r.stop(t)
}
