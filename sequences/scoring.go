package sequences

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/nurture-oss/nurture/engine"
)

// Notify lists the channels that tell reps about an escalation. Content
// holds no secrets: URLs that carry a secret (Slack webhooks) and signing
// secrets are named by environment variable.
type Notify struct {
	Slack    []SlackChannel
	Webhooks []WebhookChannel
	// EmailRep sends the assigned rep an email.
	EmailRep bool
	// EmailFrom is the sender of rep emails ("" = nurture.yaml defaults.from).
	EmailFrom string
}

// SlackChannel is a Slack incoming webhook.
type SlackChannel struct {
	Name   string
	URL    string // literal URL, or
	URLEnv string // the environment variable holding it
}

// WebhookChannel is a generic endpoint signed per the Standard Webhooks
// spec with the secret in SecretEnv.
type WebhookChannel struct {
	Name      string
	URL       string
	URLEnv    string
	SecretEnv string
	Timeout   time.Duration // 0 = the runtime's default
	// Format of the request body: WebhookFormatStandard (the default) or
	// WebhookFormatHubSpotTask.
	Format string
}

// Webhook body formats (notify.webhooks[].format).
const (
	// WebhookFormatStandard is Nurture's own escalation payload.
	WebhookFormatStandard = "standard"
	// WebhookFormatHubSpotTask is the body of HubSpot's CRM "create a task"
	// API.
	WebhookFormatHubSpotTask = "hubspot_task"
)

// WebhookFormats are the values notify.webhooks[].format accepts.
var WebhookFormats = []string{WebhookFormatStandard, WebhookFormatHubSpotTask}

// ResolveURL returns the channel's URL, reading URLEnv through getenv.
func (c SlackChannel) ResolveURL(getenv func(string) string) (string, error) {
	return resolveURL(c.Name, c.URL, c.URLEnv, getenv)
}

// ResolveURL returns the endpoint's URL, reading URLEnv through getenv.
func (c WebhookChannel) ResolveURL(getenv func(string) string) (string, error) {
	return resolveURL(c.Name, c.URL, c.URLEnv, getenv)
}

func resolveURL(name, literal, env string, getenv func(string) string) (string, error) {
	if literal != "" {
		return literal, nil
	}
	v := getenv(env)
	if v == "" {
		return "", fmt.Errorf("channel %s: environment variable %s is not set", name, env)
	}
	if err := checkURL(v); err != nil {
		return "", fmt.Errorf("channel %s: %s: %w", name, env, err)
	}
	return v, nil
}

var envNameRe = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("bad URL %q: must be an http(s) URL", s)
	}
	return nil
}

var scoringKeys = []string{"half_life", "machine_traffic", "rules", "escalation", "routing", "notify"}

// loadScoring decodes scoring.yaml.
func (c *compiler) loadScoring(f *yfile, root ast.Node) (*engine.Scoring, Notify) {
	sc := &engine.Scoring{OnEscalate: engine.EscalationExit, Routing: engine.Routing{Strategy: engine.RouteRoundRobin}}
	var notify Notify
	m := f.mapping(root, "scoring.yaml", scoringKeys)
	if m == nil {
		return nil, notify
	}
	m.require("scoring.yaml", "rules", "escalation")
	if n := m.get("half_life"); n != nil {
		sc.HalfLife, _ = f.duration(n, "half_life")
	}
	if n := m.get("machine_traffic"); n != nil {
		mm := f.mapping(n, "machine_traffic", []string{"ignore", "ignore_opens_within"})
		if v := mm.get("ignore"); v != nil {
			sc.IgnoreMachine, _ = f.boolean(v, "machine_traffic.ignore")
		}
		if v := mm.get("ignore_opens_within"); v != nil {
			sc.IgnoreOpensWithin, _ = f.duration(v, "machine_traffic.ignore_opens_within")
		}
	}
	if n := m.get("rules"); n != nil {
		sc.Rules = c.rules(f, n)
	}
	var thresholdNode ast.Node
	if n := m.get("escalation"); n != nil {
		em := f.mapping(n, "escalation", []string{"threshold", "rearm", "sequences", "ack_timeout"})
		if em.require("escalation", "threshold", "rearm") {
			thresholdNode = em.get("threshold")
			if x, ok := f.number(thresholdNode, "escalation.threshold"); ok {
				if x <= 0 {
					f.errf(thresholdNode, "escalation.threshold must be above zero")
				}
				sc.Threshold = x
			}
			if x, ok := f.number(em.get("rearm"), "escalation.rearm"); ok {
				if x < 0 || (sc.Threshold > 0 && x >= sc.Threshold) {
					f.errf(em.get("rearm"), "escalation.rearm must be at least 0 and below the threshold (%g)", sc.Threshold)
				}
				sc.Rearm = x
			}
		}
		if v := em.get("sequences"); v != nil {
			if s, ok := f.enum(v, "escalation.sequences", []string{"exit", "pause", "continue"}); ok {
				sc.OnEscalate = engine.EscalationAction(s)
			}
		}
		if v := em.get("ack_timeout"); v != nil {
			sc.AckTimeout, _ = f.duration(v, "escalation.ack_timeout")
		}
	}
	if n := m.get("routing"); n != nil {
		sc.Routing = c.routing(f, n)
	} else if thresholdNode != nil {
		f.errf(m.n, "scoring.yaml needs routing: with at least one rep to escalate to")
	}
	if n := m.get("notify"); n != nil {
		notify = c.notify(f, n)
	}
	if thresholdNode != nil && !f.bad {
		if why := unreachable(sc); why != "" {
			f.errf(thresholdNode, "escalation.threshold %g can never be reached: %s", sc.Threshold, why)
		}
	}
	return sc, notify
}

func (c *compiler) rules(f *yfile, n ast.Node) []*engine.Rule {
	items, ok := f.list(n, "rules", false)
	if !ok {
		return nil
	}
	var out []*engine.Rule
	seen := map[string]bool{}
	for _, it := range items {
		m := f.mapping(it, "rule", []string{"id", "on", "if", "points", "cap", "description"})
		if m == nil || !m.require("rule", "id", "on", "points") {
			continue
		}
		r := &engine.Rule{}
		if id, ok := f.str(m.get("id"), "rule id"); ok {
			if !stepIDRe.MatchString(id) {
				f.errf(m.get("id"), "rule id %q must be lower-case letters, digits, - and _", id)
			} else if seen[id] {
				f.errf(m.get("id"), "duplicate rule id %q", id)
			}
			seen[id] = true
			r.ID = id
		}
		if ev := f.eventTypes(m.get("on"), "on"); len(ev) == 1 {
			r.Event = ev[0]
		} else if len(ev) > 1 {
			f.errf(m.get("on"), "a rule scores one event type; write one rule per event")
		}
		if v := m.get("if"); v != nil {
			if cond, ok := f.condition(v, "if", c.project.Fields, scopeLead); ok {
				r.Condition = cond
			}
		}
		if x, ok := f.number(m.get("points"), "points"); ok {
			if x == 0 {
				f.errf(m.get("points"), "points must not be zero")
			}
			r.Points = x
		}
		if v := m.get("cap"); v != nil {
			cm := f.mapping(v, "cap", []string{"points", "per"})
			if cm.require("cap", "points", "per") {
				if x, ok := f.number(cm.get("points"), "cap.points"); ok {
					if x <= 0 {
						f.errf(cm.get("points"), "cap.points must be above zero (it caps the absolute points)")
					}
					r.CapPoints = x
				}
				r.CapPeriod, _ = f.duration(cm.get("per"), "cap.per")
			}
		}
		if v := m.get("description"); v != nil {
			f.str(v, "description")
		}
		out = append(out, r)
	}
	return out
}

// unreachable explains why no combination of rules can lift a score to the
// threshold, or returns "".
//
// The rule: with no rule awarding positive points the threshold is
// unreachable. If any positive rule is uncapped, a burst of its events
// reaches any threshold. If every positive rule is capped: without decay
// points accumulate period after period, so the threshold is reachable;
// with a half-life H, a rule capped at C points per period P can hold the
// score at most at C / (1 - 2^(-P/H)) (the cap filled at the start of
// every period, forever), and the threshold is unreachable when the sum of
// those limits over all positive rules is below it.
func unreachable(sc *engine.Scoring) string {
	var positive []*engine.Rule
	for _, r := range sc.Rules {
		if r.Points > 0 {
			positive = append(positive, r)
		}
	}
	if len(positive) == 0 {
		return "no rule awards positive points"
	}
	if slices.ContainsFunc(positive, func(r *engine.Rule) bool { return r.CapPoints == 0 }) || sc.HalfLife == 0 {
		return ""
	}
	var most float64
	for _, r := range positive {
		most += r.CapPoints / (1 - math.Exp2(-float64(r.CapPeriod)/float64(sc.HalfLife)))
	}
	if most < sc.Threshold {
		return fmt.Sprintf("every positive rule is capped and, with a half-life of %s, the caps can hold the score at most at %.1f", formatDuration(sc.HalfLife), most)
	}
	return ""
}

func formatDuration(d time.Duration) string {
	for _, u := range durationUnits {
		if d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.unit)
		}
	}
	return d.String()
}

func (c *compiler) routing(f *yfile, n ast.Node) engine.Routing {
	r := engine.Routing{Strategy: engine.RouteRoundRobin}
	m := f.mapping(n, "routing", []string{"strategy", "territory_from", "reps"})
	if m == nil {
		return r
	}
	if v := m.get("strategy"); v != nil {
		if s, ok := f.enum(v, "routing.strategy", []string{"round_robin", "territory"}); ok {
			r.Strategy = engine.RoutingStrategy(s)
		}
	}
	var territoryField *Field
	if v := m.get("territory_from"); v != nil {
		r.TerritoryTrait = c.traitRef(f, v, "routing.territory_from")
		if fd, ok := c.project.Fields[r.TerritoryTrait]; ok {
			territoryField = &fd
		}
	} else if r.Strategy == engine.RouteTerritory {
		f.errf(m.n, "routing.strategy territory needs territory_from: traits.<field>")
	}
	if !m.require("routing", "reps") {
		return r
	}
	items, ok := f.list(m.get("reps"), "routing.reps", false)
	if !ok {
		return r
	}
	if len(items) == 0 {
		f.errf(m.get("reps"), "routing.reps must list at least one rep")
	}
	seen := map[string]bool{}
	for _, it := range items {
		rm := f.mapping(it, "rep", []string{"id", "name", "email", "territories", "capacity", "away"})
		if rm == nil || !rm.require("rep", "id", "email") {
			continue
		}
		var rep engine.Rep
		if id, ok := f.str(rm.get("id"), "rep id"); ok {
			if !stepIDRe.MatchString(id) {
				f.errf(rm.get("id"), "rep id %q must be lower-case letters, digits, - and _", id)
			} else if seen[id] {
				f.errf(rm.get("id"), "duplicate rep id %q", id)
			}
			seen[id] = true
			rep.ID = id
		}
		if v := rm.get("name"); v != nil {
			rep.Name, _ = f.str(v, "name")
		}
		rep.Email, _ = f.address(rm.get("email"), "email")
		if v := rm.get("territories"); v != nil {
			vals, nodes := f.strs(v, "territories")
			rep.Territories = vals
			if territoryField != nil && len(territoryField.Values) > 0 {
				for i, t := range vals {
					if !slices.Contains(territoryField.Values, t) {
						f.errf(nodes[i], "territory %q is not one of field %s's values %v%s", t, territoryField.Name, territoryField.Values, suggest(t, territoryField.Values))
					}
				}
			}
			if r.Strategy != engine.RouteTerritory {
				f.errf(v, "territories only apply with routing.strategy: territory")
			}
		}
		if v := rm.get("capacity"); v != nil {
			rep.Capacity, _ = f.integer(v, "capacity", 0, 100000)
		}
		if v := rm.get("away"); v != nil {
			rep.Away, _ = f.boolean(v, "away")
		}
		r.Reps = append(r.Reps, rep)
	}
	return r
}

func (c *compiler) notify(f *yfile, n ast.Node) Notify {
	var out Notify
	m := f.mapping(n, "notify", []string{"slack", "webhooks", "email_rep", "email_from"})
	if m == nil {
		return out
	}
	names := map[string]bool{}
	name := func(v ast.Node) string {
		s, ok := f.str(v, "name")
		if ok && names[s] {
			f.errf(v, "duplicate channel name %q", s)
		}
		names[s] = true
		return s
	}
	urlPair := func(cm *mapv, what string) (string, string) {
		var u, env string
		switch {
		case cm.has("url") && cm.has("url_env"):
			f.errf(cm.keys["url_env"], "%s: set url or url_env, not both", what)
		case cm.has("url"):
			if s, ok := f.str(cm.get("url"), "url"); ok {
				if err := checkURL(s); err != nil {
					f.errf(cm.get("url"), "%s: %v", what, err)
				}
				u = s
			}
		case cm.has("url_env"):
			env = f.envName(cm.get("url_env"), "url_env")
		default:
			f.errf(cm.n, "%s needs url or url_env", what)
		}
		return u, env
	}
	if v := m.get("slack"); v != nil {
		items, _ := f.list(v, "notify.slack", false)
		for _, it := range items {
			cm := f.mapping(it, "slack channel", []string{"name", "url", "url_env"})
			if cm == nil || !cm.require("slack channel", "name") {
				continue
			}
			ch := SlackChannel{Name: name(cm.get("name"))}
			ch.URL, ch.URLEnv = urlPair(cm, "slack channel "+ch.Name)
			out.Slack = append(out.Slack, ch)
		}
	}
	if v := m.get("webhooks"); v != nil {
		items, _ := f.list(v, "notify.webhooks", false)
		for _, it := range items {
			cm := f.mapping(it, "webhook", []string{"name", "url", "url_env", "secret_env", "timeout", "format"})
			if cm == nil || !cm.require("webhook", "name", "secret_env") {
				continue
			}
			ch := WebhookChannel{Name: name(cm.get("name"))}
			ch.URL, ch.URLEnv = urlPair(cm, "webhook "+ch.Name)
			ch.SecretEnv = f.envName(cm.get("secret_env"), "secret_env")
			if t := cm.get("timeout"); t != nil {
				ch.Timeout, _ = f.duration(t, "timeout")
			}
			ch.Format = WebhookFormatStandard
			if v := cm.get("format"); v != nil {
				if fm, ok := f.enum(v, "webhook "+ch.Name+" format", WebhookFormats); ok {
					ch.Format = fm
				}
			}
			out.Webhooks = append(out.Webhooks, ch)
		}
	}
	if v := m.get("email_rep"); v != nil {
		out.EmailRep, _ = f.boolean(v, "notify.email_rep")
	}
	if v := m.get("email_from"); v != nil {
		out.EmailFrom, _ = f.address(v, "notify.email_from")
	}
	if out.EmailRep && out.EmailFrom == "" && c.project.From == "" {
		f.errf(m.keys["email_rep"], "notify.email_rep needs a sender: set notify.email_from or defaults.from in nurture.yaml")
	}
	return out
}

func (f *yfile) envName(n ast.Node, what string) string {
	s, ok := f.str(n, what)
	if !ok {
		return ""
	}
	if !envNameRe.MatchString(s) {
		f.errf(n, "%s must be an environment variable name such as NURTURE_SLACK_URL, got %q (never put secrets in content)", what, s)
		return ""
	}
	return s
}
