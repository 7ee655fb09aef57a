// Package leadview builds what a sales development rep sees about a lead:
// who the lead is, the score decayed to now, the events that earned the
// points, recent activity, the rep who owns the lead, the escalation and
// the links to the lead page and to acknowledge it.
//
// A [View] is built from the lead's state and its timeline (store.History
// entries whose Data are the engine's effects as JSON) by a [Builder]. Every
// notification channel (Slack, the signed webhook, the rep email) and the
// lead page render the same View, so they all say the same thing. The
// channels receive a View; they never read the store.
//
// The package also renders the rep email ([RenderEmail]) and defines the
// claim carried by the signed acknowledgement link ([AckClaim]), so the
// notification that writes the link and the page that reads it agree.
package leadview
