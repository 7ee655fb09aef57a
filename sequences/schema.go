package sequences

import (
	"encoding/json"
	"slices"
)

// SchemaKinds are the kinds of content file SchemaFor describes.
var SchemaKinds = []string{"sequence", "scoring", "nurture", "calendar"}

// SchemaID is the base $id of the schemas.
const SchemaID = "https://nurture-oss.github.io/nurture/schema/"

type obj = map[string]any

const durationPattern = `^([0-9]+(w|d|h|m|s))+$`

func str(desc string) obj { return obj{"type": "string", "description": desc} }

func strOrList(desc string) obj {
	return obj{"description": desc, "oneOf": []any{
		obj{"type": "string"},
		obj{"type": "array", "items": obj{"type": "string"}, "minItems": 1},
	}}
}

func ref(name string) obj { return obj{"$ref": "#/$defs/" + name} }

func closed(desc string, props obj, required ...string) obj {
	o := obj{"type": "object", "description": desc, "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func withDesc(o obj, desc string) obj {
	out := obj{}
	for k, v := range o {
		out[k] = v
	}
	out["description"] = desc
	return out
}

func defs() obj {
	stepBase := func(action string, actionSchema obj, extra obj, required ...string) obj {
		props := obj{
			"id":          withDesc(ref("id"), "Step id, unique in the sequence (lower-case, digits, - and _; not \"end\")."),
			"description": str("Free text for people reading the file."),
			action:        actionSchema,
		}
		for k, v := range extra {
			props[k] = v
		}
		return closed("A "+action+" step.", props, append([]string{"id", action}, required...)...)
	}
	then := withDesc(ref("target"), "Where to go after this step: a step id or end. Default: the next step.")
	return obj{
		"id":        obj{"type": "string", "pattern": `^[a-z0-9][a-z0-9_-]{0,63}$`},
		"target":    obj{"type": "string", "pattern": `^[a-z0-9][a-z0-9_-]{0,63}$`, "description": "A step id in this sequence, or end."},
		"duration":  obj{"type": "string", "pattern": durationPattern, "description": "A duration: number+unit pairs with units w, d, h, m, s (90m, 2h, 3d, 2w, 1d12h). A day is 24 hours."},
		"cron":      obj{"type": "string", "description": "A five-field cron spec (minute hour day-of-month month day-of-week, names like MON-FRI allowed) or @daily, @weekly, @monthly, @yearly, @hourly. Evaluated in the lead's time zone. Quote it: a leading * is YAML syntax."},
		"condition": obj{"type": "string", "description": "An expr-lang condition: traits.<field>, email, score, event.type, event.properties.<name>, now; in sequences also opened(\"step\"), clicked(\"step\"), sent(\"step\")."},
		"eventType": obj{"type": "string", "pattern": `^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$`},
		"timezone":  obj{"type": "string", "description": "An IANA time zone name such as Europe/Berlin."},
		"address":   obj{"type": "string", "description": "An email address, optionally with a name: \"Maya <maya@example.com>\"."},
		"envName":   obj{"type": "string", "pattern": `^[A-Z_][A-Z0-9_]{0,127}$`, "description": "The name of an environment variable (never the secret itself)."},
		"holiday":   obj{"type": "string", "description": "A calendar id (a file in calendars/), a date YYYY-MM-DD, or MM-DD for every year."},
		"wait": obj{"description": "A duration (2d), business days (5bd) or {business_days: 5}.", "oneOf": []any{
			ref("duration"),
			obj{"type": "string", "pattern": `^[0-9]+bd$`},
			closed("Business days: Monday to Friday, skipping the send window's holidays, in the lead's zone.", obj{"business_days": obj{"type": "integer", "minimum": 1, "maximum": 260}}, "business_days"),
		}},
		"step": obj{"description": "One step. Exactly one action key: email, wait, wait_until, wait_for, branch, goto or end.", "oneOf": []any{
			stepBase("email", str("Template id: templates/<id>.html."), obj{"then": then}),
			stepBase("wait", ref("wait"), obj{"then": then}),
			stepBase("wait_until", withDesc(ref("cron"), "Wait until the next time this cron spec matches, in the lead's zone."), obj{"then": then}),
			stepBase("wait_for", withDesc(ref("eventType"), "The event type to wait for."), obj{
				"match":      withDesc(ref("condition"), "Only an event for which this holds ends the wait."),
				"timeout":    withDesc(ref("duration"), "How long to wait (required)."),
				"on_timeout": withDesc(ref("target"), "Where to go when the timeout passes. Default: the next step."),
				"then":       withDesc(ref("target"), "Where to go when the event arrives. Default: the next step."),
			}, "timeout"),
			stepBase("branch", obj{"type": "array", "minItems": 1, "description": "Cases in order; the first whose condition holds wins.", "items": closed("A case.", obj{
				"if":   ref("condition"),
				"goto": ref("target"),
			}, "if", "goto")}, obj{"else": withDesc(ref("target"), "Where to go when no case holds. Default: the next step.")}),
			stepBase("goto", withDesc(ref("target"), "The step to jump to, or end."), nil),
			stepBase("end", obj{"const": true, "description": "Complete the enrollment here."}, nil),
		}},
		"sequence": closed("A nurture sequence (sequences/<id>.yaml).", obj{
			"id":            withDesc(ref("id"), "Sequence id, unique in the content directory."),
			"name":          str("Human-readable name."),
			"description":   str("Free text."),
			"from":          withDesc(ref("address"), "Default sender of this sequence's emails (templates may override)."),
			"reply_to":      withDesc(ref("address"), "Default Reply-To."),
			"transactional": obj{"type": "boolean", "description": "Transactional emails do not count toward the per-lead limits."},
			"in_flight":     obj{"enum": []any{"continue", "migrate", "exit"}, "description": "What a new version does to leads enrolled on an older one: continue on their version (default), migrate to this version at the same step id, or exit."},
			"enroll": closed("What starts an enrollment.", obj{
				"on": strOrList("Event type(s) that enroll a lead."),
				"if": withDesc(ref("condition"), "Only enroll when this holds (evaluated with the triggering event)."),
				"reenroll": obj{"description": "never (default), always (once the previous enrollment ended), or {after: 90d} (since the previous one started).", "oneOf": []any{
					obj{"enum": []any{"never", "always"}},
					closed("Re-enroll after a duration.", obj{"after": ref("duration")}, "after"),
				}},
			}, "on"),
			"exit": closed("Goals that end an enrollment early.", obj{
				"on":            strOrList("Event type(s) that end the enrollment."),
				"if":            withDesc(ref("condition"), "End the enrollment when this holds (checked after every event)."),
				"on_escalation": obj{"enum": []any{"exit", "pause", "continue"}, "description": "What escalation of the lead does to this enrollment. Default: escalation.sequences in scoring.yaml."},
			}),
			"send_window": closed("When email steps may send, in the lead's time zone.", obj{
				"at":               withDesc(ref("cron"), "Cron spec of the allowed minutes, e.g. \"* 9-16 * * MON-FRI\"."),
				"timezone_from":    obj{"type": "string", "pattern": `^traits\.[a-z_][a-z0-9_]*$`, "description": "The lead field holding the lead's IANA zone, e.g. traits.timezone."},
				"default_timezone": withDesc(ref("timezone"), "Zone for leads without a valid zone. Default: defaults.timezone in nurture.yaml."),
				"holidays":         obj{"description": "Calendar ids and dates on which nothing sends.", "oneOf": []any{ref("holiday"), obj{"type": "array", "items": ref("holiday")}}},
			}, "at"),
			"steps": obj{"type": "array", "minItems": 1, "maxItems": 500, "items": ref("step")},
		}, "id", "enroll", "steps"),
		"rule": closed("A scoring rule.", obj{
			"id":          ref("id"),
			"description": str("Free text."),
			"on":          withDesc(ref("eventType"), "The event type that scores."),
			"if":          withDesc(ref("condition"), "Only score when this holds."),
			"points":      obj{"type": "number", "description": "Points per event; negative points lower the score.", "not": obj{"const": 0}},
			"cap": closed("At most this many points from this rule per period.", obj{
				"points": obj{"type": "number", "exclusiveMinimum": 0},
				"per":    ref("duration"),
			}, "points", "per"),
		}, "id", "on", "points"),
		"rep": closed("A sales development rep.", obj{
			"id":          ref("id"),
			"name":        str("Full name."),
			"email":       ref("address"),
			"territories": obj{"type": "array", "items": obj{"type": "string"}, "description": "Values of the territory field this rep covers; none = any territory."},
			"capacity":    obj{"type": "integer", "minimum": 0, "description": "Most open escalations at once; 0 = unlimited."},
			"away":        obj{"type": "boolean", "description": "Out of office: receives no escalations."},
		}, "id", "email"),
		"scoring": closed("The scoring model, escalation, routing and notifications (scoring.yaml).", obj{
			"half_life": withDesc(ref("duration"), "Scores halve every half-life. Omit for no decay."),
			"machine_traffic": closed("Filtering of machine engagement.", obj{
				"ignore":              obj{"type": "boolean", "description": "Drop opens and clicks flagged as machine traffic."},
				"ignore_opens_within": withDesc(ref("duration"), "Drop opens this soon after the send (image prefetching)."),
			}),
			"rules": obj{"type": "array", "items": ref("rule")},
			"escalation": closed("When a lead goes to sales.", obj{
				"threshold":   obj{"type": "number", "exclusiveMinimum": 0, "description": "Escalate when the score reaches this."},
				"rearm":       obj{"type": "number", "minimum": 0, "description": "Escalate again only after the score fell below this."},
				"sequences":   obj{"enum": []any{"exit", "pause", "continue"}, "description": "What escalation does to the lead's enrollments (default exit)."},
				"ack_timeout": withDesc(ref("duration"), "Re-route to the next rep when nobody acknowledges within this time."),
			}, "threshold", "rearm"),
			"routing": closed("Who gets an escalated lead.", obj{
				"strategy":       obj{"enum": []any{"round_robin", "territory"}},
				"territory_from": obj{"type": "string", "pattern": `^traits\.[a-z_][a-z0-9_]*$`, "description": "The lead field matched against reps' territories."},
				"reps":           obj{"type": "array", "minItems": 1, "items": ref("rep")},
			}, "reps"),
			"notify": closed("Notification channels for escalations.", obj{
				"slack": obj{"type": "array", "items": closed("A Slack incoming webhook.", obj{
					"name":    str("Channel name, for logs and history."),
					"url":     obj{"type": "string", "format": "uri"},
					"url_env": withDesc(ref("envName"), "Environment variable holding the webhook URL (preferred: the URL is a secret)."),
				}, "name")},
				"webhooks": obj{"type": "array", "items": closed("A webhook signed per Standard Webhooks.", obj{
					"name":       str("Endpoint name."),
					"url":        obj{"type": "string", "format": "uri"},
					"url_env":    ref("envName"),
					"secret_env": withDesc(ref("envName"), "Environment variable holding the signing secret (whsec_...)."),
					"timeout":    ref("duration"),
					"format":     obj{"enum": []any{"standard", "hubspot_task"}, "description": "Request body: standard (Nurture's escalation payload, the default) or hubspot_task (HubSpot's create-a-task CRM API body)."},
				}, "name", "secret_env")},
				"email_rep":  obj{"type": "boolean", "description": "Email the assigned rep."},
				"email_from": withDesc(ref("address"), "Sender of rep emails. Default: defaults.from."),
			}),
		}, "rules", "escalation"),
		"field": obj{"oneOf": []any{
			obj{"enum": []any{"string", "number", "bool", "list"}},
			closed("A lead field.", obj{
				"type":        obj{"enum": []any{"string", "number", "bool", "list"}},
				"default":     obj{"description": "Value used when a lead lacks the field."},
				"values":      obj{"type": "array", "items": obj{"type": "string"}, "description": "Allowed values of a string field."},
				"description": str("Free text."),
			}, "type"),
		}},
		"nurture": closed("Project settings (nurture.yaml).", obj{
			"fields": obj{"type": "object", "description": "Declared lead fields (traits), by name.", "propertyNames": obj{"pattern": `^[a-z_][a-z0-9_]{0,63}$`}, "additionalProperties": ref("field")},
			"defaults": closed("Defaults for all sequences.", obj{
				"from":     ref("address"),
				"reply_to": ref("address"),
				"timezone": withDesc(ref("timezone"), "Default zone of send windows."),
			}),
			"limits": closed("Per-lead limits across sequences.", obj{
				"max_emails": obj{"type": "integer", "minimum": 1},
				"per":        ref("duration"),
			}, "max_emails", "per"),
		}),
		"calendar": closed("A holiday calendar (calendars/<id>.yaml).", obj{
			"name":  str("Human-readable name."),
			"dates": obj{"type": "array", "items": obj{"type": "string", "pattern": `^([0-9]{4}-)?[0-9]{2}-[0-9]{2}$`}, "description": "YYYY-MM-DD for one date, MM-DD for every year."},
		}, "dates"),
	}
}

func marshalSchema(o obj) []byte {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		panic(err) // static data
	}
	return append(b, '\n')
}

// Schema returns the JSON Schema (draft 2020-12) accepting any content file:
// a sequence, scoring.yaml, nurture.yaml or a calendar.
func Schema() []byte {
	var kinds []any
	for _, k := range SchemaKinds {
		kinds = append(kinds, ref(k))
	}
	return marshalSchema(obj{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     SchemaID + "content.json",
		"title":   "Nurture content file",
		"anyOf":   kinds,
		"$defs":   defs(),
	})
}

// SchemaFor returns the JSON Schema of one kind of content file (see
// SchemaKinds), or nil for an unknown kind.
func SchemaFor(kind string) []byte {
	if !slices.Contains(SchemaKinds, kind) {
		return nil
	}
	return marshalSchema(obj{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     SchemaID + kind + ".json",
		"title":   "Nurture " + kind + " file",
		"$ref":    "#/$defs/" + kind,
		"$defs":   defs(),
	})
}
