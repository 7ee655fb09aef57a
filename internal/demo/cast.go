package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// Persona is how engaged a demo lead is.
type Persona string

const (
	// Hot leads explore the product, look at pricing, invite teammates and
	// ask for a demo: they cross the escalation threshold.
	Hot Persona = "hot"
	// Warm leads read the docs and attend a webinar.
	Warm Persona = "warm"
	// Cold leads sign up and go quiet; later the CRM marks them cold.
	Cold Persona = "cold"
)

type engagement struct{ open, click float64 }

func (p Persona) engagement() engagement {
	switch p {
	case Hot:
		return engagement{open: 0.9, click: 0.7}
	case Warm:
		return engagement{open: 0.6, click: 0.35}
	default:
		return engagement{open: 0.2, click: 0.1}
	}
}

// Lead is one member of the demo's cast.
type Lead struct {
	Index     int
	Key       string
	FirstName string
	LastName  string
	Email     string
	Company   string
	JobTitle  string
	Region    string
	Timezone  string
	Employees int
	Persona   Persona
	// Arrival is the offset of the trial sign-up from the demo's start.
	Arrival time.Duration
	Script  []Step
}

// Step is one scripted event of a lead, at an offset from its arrival.
type Step struct {
	After      time.Duration
	Type       string
	Properties map[string]any
	// SignUp marks the trial.started event, which carries the traits.
	SignUp bool
}

// Event builds the step's event for l, on a demo that started at start
// (the id is set by the caller).
func (s Step) Event(l Lead, start time.Time) *engine.Event {
	ev := &engine.Event{Type: s.Type, Lead: l.Key, Time: start.Add(l.Arrival + s.After).UTC(), Properties: s.Properties}
	if s.SignUp {
		ev.Email = l.Email
		ev.Traits = map[string]any{
			"first_name": l.FirstName, "last_name": l.LastName, "company": l.Company, "job_title": l.JobTitle,
			"plan": "trial", "region": l.Region, "timezone": l.Timezone, "employees": l.Employees,
			"country": countryOf(l.Timezone),
		}
	}
	return ev
}

var (
	firstNames = []string{"Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Inès", "Jonas", "Kofi", "Lena",
		"Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Victor", "Wen", "Yara"}
	lastNames = []string{"Almeida", "Brennan", "Dubois", "Eriksen", "Fischer", "Gupta", "Haddad", "Ito", "Jensen", "Kowalski",
		"Lindqvist", "Mensah", "Novak", "Okafor", "Park", "Rossi", "Santos", "Tanaka", "Vargas", "Weber"}
	companies = []string{"Acme Robotics", "Bluefin Logistics", "Copperleaf Health", "Driftwood Media", "Evergreen Foods",
		"Foxglove Bank", "Granite Labs", "Harbor Analytics", "Ironclad Security", "Juniper Retail", "Kestrel Energy",
		"Lumos Education", "Marlin Travel", "Northwind Traders", "Orchid Insurance", "Pinecone Games"}
	titles = []string{"Head of Data", "Analytics Engineer", "VP Operations", "Product Manager", "CTO", "Data Analyst",
		"Growth Lead", "BI Developer"}
	zones = map[string][]string{
		"amer": {"America/New_York", "America/Chicago", "America/Los_Angeles", "America/Toronto"},
		"emea": {"Europe/Berlin", "Europe/London", "Europe/Paris", "Europe/Madrid"},
		"apac": {"Asia/Tokyo", "Australia/Sydney", "Asia/Singapore"},
	}
	regions   = []string{"amer", "amer", "emea", "emea", "apac"}
	headcount = []int{12, 35, 80, 150, 240, 600, 1200, 4000}
)

func countryOf(tz string) string {
	switch tz {
	case "America/New_York", "America/Chicago", "America/Los_Angeles":
		return "US"
	case "America/Toronto":
		return "CA"
	case "Europe/Berlin":
		return "DE"
	case "Europe/London":
		return "GB"
	case "Europe/Paris":
		return "FR"
	case "Europe/Madrid":
		return "ES"
	case "Asia/Tokyo":
		return "JP"
	case "Australia/Sydney":
		return "AU"
	case "Asia/Singapore":
		return "SG"
	}
	return ""
}

// Cast returns the n leads of the demo for seed. The first lead is always a
// hot prospect at a large company in the Americas, the second warm and the
// third cold, so every seed shows every path; the rest are drawn.
func Cast(seed int64, n int) []Lead {
	r := rand.New(rand.NewPCG(uint64(seed), 0x6e75727475726521))
	fn := r.Perm(len(firstNames))
	co := r.Perm(len(companies))
	leads := make([]Lead, n)
	arrival := time.Duration(0)
	for i := range leads {
		l := Lead{
			Index:     i,
			Key:       fmt.Sprintf("lead-%d", i+1),
			FirstName: firstNames[fn[i%len(fn)]],
			LastName:  lastNames[r.IntN(len(lastNames))],
			Company:   companies[co[i%len(co)]],
			JobTitle:  titles[r.IntN(len(titles))],
			Region:    regions[r.IntN(len(regions))],
			Employees: headcount[r.IntN(len(headcount))],
			Arrival:   arrival,
		}
		switch i {
		case 0:
			l.Persona, l.Region, l.Employees = Hot, "amer", 1200
		case 1:
			l.Persona = Warm
		case 2:
			l.Persona = Cold
		default:
			switch x := r.Float64(); {
			case x < 0.3:
				l.Persona = Hot
			case x < 0.7:
				l.Persona = Warm
			default:
				l.Persona = Cold
			}
		}
		tzs := zones[l.Region]
		l.Timezone = tzs[r.IntN(len(tzs))]
		if i == 0 {
			l.Timezone = "America/New_York"
		}
		l.Email = emailOf(l.FirstName, l.LastName, l.Company)
		l.Script = script(l, r)
		leads[i] = l
		// Sign-ups trickle in: one every one to five hours.
		arrival += time.Duration(60+r.IntN(240)) * time.Minute
	}
	return leads
}

// emailOf builds an address on a reserved domain (RFC 2606 .example).
func emailOf(first, last, company string) string {
	clean := func(s string) string {
		var b strings.Builder
		for _, c := range strings.ToLower(s) {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
				b.WriteRune(c)
			case c == 'é' || c == 'è':
				b.WriteRune('e')
			}
		}
		return b.String()
	}
	return clean(first) + "." + clean(last) + "@" + clean(company) + ".example"
}

func h(n float64) time.Duration { return time.Duration(n * float64(time.Hour)) }

func page(path string) map[string]any { return map[string]any{"path": path} }

// script is what a lead does on its own, by persona.
func script(l Lead, r *rand.Rand) []Step {
	j := func(base float64) time.Duration { return h(base + r.Float64()*base/4) } // a little jitter
	steps := []Step{{Type: "trial.started", SignUp: true}}
	switch l.Persona {
	case Hot:
		steps = append(steps,
			Step{After: j(0.7), Type: "page.viewed", Properties: page("/docs/getting-started")},
			Step{After: j(18), Type: "page.viewed", Properties: page("/pricing")},
			Step{After: j(24), Type: "dashboard.created", Properties: map[string]any{"name": "Weekly revenue"}},
			Step{After: j(30), Type: "teammate.invited", Properties: map[string]any{"role": "analyst"}},
			Step{After: j(40), Type: "demo.requested", Properties: map[string]any{"source": "in-app"}},
		)
		if r.IntN(2) == 0 {
			steps = append(steps, Step{After: j(90), Type: "demo.no_show"})
		} else {
			steps = append(steps, Step{After: j(80), Type: "demo.booked"})
		}
	case Warm:
		steps = append(steps,
			Step{After: j(3), Type: "page.viewed", Properties: page("/docs/connectors")},
			Step{After: j(20), Type: "webinar.registered", Properties: map[string]any{"webinar": "dashboards-101"}},
			Step{After: j(44), Type: "webinar.attended", Properties: map[string]any{"webinar": "dashboards-101"}},
			Step{After: j(70), Type: "page.viewed", Properties: page("/pricing")},
			Step{After: j(100), Type: "dashboard.created", Properties: map[string]any{"name": "Pipeline"}},
		)
	default:
		steps = append(steps,
			Step{After: j(140), Type: "lead.went_cold", Properties: map[string]any{"source": "crm"}},
		)
	}
	return steps
}
