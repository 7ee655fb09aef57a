package sequences_test

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/sequences"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// base is a small valid content directory; cases override files.
func base() fstest.MapFS {
	return fstest.MapFS{
		"nurture.yaml": {Data: []byte(`fields:
  first_name: {type: string, default: there}
  plan: {type: string, values: [free, trial, pro]}
  employees: number
  timezone: string
  region: {type: string, values: [amer, emea]}
  tags: list
defaults:
  from: "Acme <hi@acme.example>"
limits: {max_emails: 3, per: 7d}
`)},
		"calendars/us.yaml": {Data: []byte("dates: [12-25, 2026-11-26]\n")},
		"templates/welcome.html": {Data: []byte(`---
subject: "Welcome, {{ .lead.first_name }}"
preheader: Get started
---
<p>Hi {{ .lead.first_name }}, <a href="https://acme.example/start">start here</a>.</p>
<a href="{{ .unsubscribe_url }}">unsubscribe</a>
`)},
		"templates/welcome.txt": {Data: []byte("Hi {{ .lead.first_name }}\n")},
		"templates/tips.html":   {Data: []byte("---\nsubject: Tips\n---\n<p>Tips for {{ .lead.email }}</p>\n")},
		"sequences/trial.yaml": {Data: []byte(`id: trial
enroll:
  on: trial.started
  if: traits.plan == "trial"
  reenroll: {after: 30d}
exit:
  on: [demo.booked]
  on_escalation: pause
send_window:
  at: "* 9-16 * * MON-FRI"
  timezone_from: traits.timezone
  default_timezone: Europe/Berlin
  holidays: [us, 2026-12-24]
steps:
  - id: welcome
    email: welcome
  - id: pause
    wait: 2bd
  - id: tips
    email: tips
  - id: clicked
    wait_for: email.clicked
    match: event.properties.step == "tips"
    timeout: 3d
    on_timeout: nudge
  - id: check
    branch:
      - if: clicked("tips") && score >= 10
        goto: done
    else: nudge
  - id: nudge
    wait_until: "0 9 * * MON"
  - id: nudge-mail
    email: tips
  - id: done
    end: true
`)},
		"scoring.yaml": {Data: []byte(`half_life: 14d
machine_traffic: {ignore: true, ignore_opens_within: 10s}
rules:
  - {id: clicked, on: email.clicked, points: 5, cap: {points: 15, per: 1d}}
  - {id: pricing, on: page.viewed, if: 'event.properties.path == "/pricing"', points: 20}
  - {id: unsub, on: email.unsubscribed, points: -50}
escalation: {threshold: 100, rearm: 60, sequences: pause, ack_timeout: 4h}
routing:
  strategy: territory
  territory_from: traits.region
  reps:
    - {id: ana, email: ana@acme.example, territories: [emea], capacity: 10}
    - {id: bo, email: bo@acme.example}
notify:
  slack: [{name: sdr, url_env: SLACK_URL}]
  webhooks: [{name: crm, url: "https://crm.example/hook", secret_env: CRM_SECRET}]
  email_rep: true
`)},
	}
}

func withFiles(files map[string]string) fstest.MapFS {
	m := base()
	for p, s := range files {
		if s == "" {
			delete(m, p)
			continue
		}
		m[p] = &fstest.MapFile{Data: []byte(s)}
	}
	return m
}

func problemsOf(t *testing.T, fsys fs.FS) string {
	t.Helper()
	_, err := sequences.LoadFS(fsys)
	if err == nil {
		return ""
	}
	var pe *sequences.ProblemsError
	require.True(t, errors.As(err, &pe), "want *ProblemsError, got %v", err)
	return pe.Error() + "\n"
}

func TestBaseIsValid(t *testing.T) {
	t.Parallel()
	b, err := sequences.LoadFS(base())
	require.NoError(t, err)
	require.Len(t, b.Content.Sequences, 1)
}

// seq replaces the steps of the base sequence.
func seq(body string) map[string]string {
	return map[string]string{"sequences/trial.yaml": "id: trial\nenroll: {on: trial.started}\n" + body}
}

func TestValidationGolden(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"syntax-error":        {"sequences/trial.yaml": "id: trial\nenroll: {on: [a, b}\n"},
		"unknown-keys":        seq("exitt: {on: demo.booked}\nsteps:\n  - id: a\n    emial: welcome\n  - id: b\n    wait: 1d\n    timeout: 2d\n"),
		"wrong-types":         seq("transactional: maybe\nin_flight: 3\nsteps: {a: 1}\n"),
		"bad-durations":       seq("steps:\n  - {id: a, wait: 3 days}\n  - {id: b, wait: 30}\n  - {id: c, wait: 2x}\n  - {id: d, wait: 0bd}\n"),
		"bad-cron":            seq("steps:\n  - {id: a, wait_until: \"61 * * * *\"}\n  - {id: b, wait_until: \"0 9 * *\"}\n  - {id: c, wait_until: \"@every 1h\"}\n"),
		"window-never-opens":  seq("send_window: {at: \"* * 30 2 *\"}\nsteps:\n  - {id: a, email: welcome}\n"),
		"bad-timezone":        seq("send_window: {at: \"* 9-17 * * *\", default_timezone: Europe/Berlim, timezone_from: traits.tz}\nsteps:\n  - {id: a, email: welcome}\n"),
		"bad-expressions":     seq("steps:\n  - id: a\n    email: welcome\n  - id: b\n    branch:\n      - if: traits.plann == \"pro\"\n        goto: a\n      - if: traits.employees > \"ten\"\n        goto: end\n      - if: opened(\"nope\") || opened(\"b\")\n        goto: end\n      - if: score >\n        goto: end\n"),
		"expr-in-lead-scope":  {"sequences/trial.yaml": "id: trial\nenroll: {on: trial.started, if: 'clicked(\"a\")'}\nsteps:\n  - {id: a, email: welcome}\n"},
		"missing-template":    seq("steps:\n  - {id: a, email: welcom}\n  - {id: b, email: newsletter}\n"),
		"goto-nowhere":        seq("steps:\n  - {id: a, email: welcome, then: finish}\n  - {id: b, goto: c}\n  - {id: c, wait_for: x.y, timeout: 1d, on_timeout: nowhere}\n"),
		"unreachable":         seq("steps:\n  - {id: a, email: welcome, then: end}\n  - {id: orphan, email: tips}\n"),
		"loop-without-wait":   seq("steps:\n  - {id: a, email: welcome}\n  - {id: b, goto: a}\n"),
		"wait-for-no-timeout": seq("steps:\n  - {id: a, wait_for: email.clicked}\n"),
		"duplicate-steps":     seq("steps:\n  - {id: a, email: welcome}\n  - {id: a, email: tips}\n  - {id: end, wait: 1d}\n  - {id: two, wait: 1d, email: tips}\n  - {id: none}\n"),
		"anchors":             seq("steps:\n  - &x {id: a, email: welcome}\n  - *x\n"),
		"unquoted-star":       seq("send_window: {at: * 9 * * *}\nsteps:\n  - {id: a, email: welcome}\n"),
		"template-vars": {
			"templates/welcome.html": "---\nsubject: \"Hi {{ .lead.frist_name }}\"\n---\n<p>{{ .lead.first_name }} {{ .lead.plan_name }}</p>\n<p>{{ .first_name }} {{ .unsub }}</p>\n{{ with .lead }}{{ .employes }}{{ end }}\n",
			"templates/welcome.txt":  "Hi {{ .lead.nickname }}\n{{ if }}\n",
		},
		"template-no-front-matter": {"templates/tips.html": "<p>no front matter</p>\n"},
		"template-bad-html":        {"templates/tips.html": "---\nsubject: Tips\nfrom: not an address\nsubjekt: x\n---\n<p>{{ .lead.first_name </p>\n"},
		"threshold-unreachable":    {"scoring.yaml": "half_life: 2d\nrules:\n  - {id: a, on: email.clicked, points: 5, cap: {points: 10, per: 1d}}\n  - {id: b, on: page.viewed, points: 10, cap: {points: 20, per: 1w}}\nescalation: {threshold: 100, rearm: 60}\nrouting: {reps: [{id: ana, email: ana@acme.example}]}\n"},
		"threshold-no-positive":    {"scoring.yaml": "rules:\n  - {id: a, on: email.unsubscribed, points: -5}\nescalation: {threshold: 100, rearm: 50}\nrouting: {reps: [{id: ana, email: ana@acme.example}]}\n"},
		"scoring-problems":         {"scoring.yaml": "rules:\n  - {id: a, on: email.clicked, points: 0, if: traits.nope}\n  - {id: a, on: [x, y], points: 5}\nescalation: {threshold: 100, rearm: 150, sequences: stop}\nrouting:\n  strategy: territory\n  territory_from: traits.region\n  reps:\n    - {id: ana, email: ana, territories: [emia]}\nnotify:\n  slack: [{name: s, url_env: lower-case}]\n  webhooks: [{name: w, url: \"ftp://x\"}]\n"},
		"project-problems":         {"nurture.yaml": "fields:\n  First-Name: string\n  email: string\n  plan: {type: strng}\n  size: {type: number, default: big}\ndefaults: {timezone: Mars/Base, from: nobody}\nlimits: {max_emails: 0}\n"},
		"holidays":                 seq("send_window: {at: \"* 9-17 * * *\", holidays: [uss, 2026-02-30, 13-01]}\nsteps:\n  - {id: a, email: welcome}\n"),
		"enroll-problems":          {"sequences/trial.yaml": "id: Trial Seq\nenroll: {on: [\"bad event\"], reenroll: sometimes}\nin_flight: migrat\nsteps: []\n"},
		"empty-file":               {"sequences/trial.yaml": "# just a comment\n"},
		"two-documents":            {"sequences/trial.yaml": "id: a\n---\nid: b\n"},
		"no-sequences":             {"sequences/trial.yaml": ""},
		"yml-extension":            {"sequences/extra.yml": "id: x\n"},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := problemsOf(t, withFiles(files))
			require.NotEmpty(t, got, "expected problems")
			golden := filepath.Join("testdata", "validate", name+".txt")
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -update to create the golden file")
			require.Equal(t, string(want), got)
		})
	}
}

func TestProblemsHavePositions(t *testing.T) {
	t.Parallel()
	got := problemsOf(t, withFiles(seq("steps:\n  - {id: a, wait: 3 days}\n")))
	require.True(t, strings.HasPrefix(got, "sequences/trial.yaml:4:19: "), got)
}

func TestExpressionPositions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, steps, want string
	}{
		{"plain", "  - {id: a, email: welcome}\n  - id: b\n    branch:\n      - if: score > 1 && traits.nope\n        goto: end\n",
			"sequences/trial.yaml:7:33: if: unknown field nope"},
		{"double-quoted", "  - {id: a, email: welcome}\n  - id: b\n    branch:\n      - if: \"score > 1 && traits.nope\"\n        goto: end\n",
			"sequences/trial.yaml:7:34: if: unknown field nope"},
		{"block", "  - {id: a, email: welcome}\n  - id: b\n    branch:\n      - if: |\n          score > 1 &&\n            traits.nope\n        goto: end\n",
			"sequences/trial.yaml:9:20: if: unknown field nope"},
		{"step-call-block", "  - {id: a, email: welcome}\n  - id: b\n    branch:\n      - if: >-\n          score > 1 ||\n          opened(\"x\")\n        goto: end\n",
			"sequences/trial.yaml:8:11: if: opened(\"x\"): no email step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := problemsOf(t, withFiles(seq("steps:\n"+tt.steps)))
			require.Contains(t, got, tt.want)
		})
	}
}
