// Package notify tells people what the remediator does, through Alertmanager's API v2: it
// silences an alert while a heal acts on it and posts the remediator's own alerts (a heal
// failed, was declined, a target is suspended, a heal was performed), so that Alertmanager's
// routes, grouping and receivers reach the right person.
//
// Alertmanager is a helper, never a dependency of healing: when it cannot be reached the
// remediator heals on, retries with backoff and counts the failures
// (remediator_alertmanager_requests_failed_total), which an alert rule watches.
package notify
