package loadtest

import (
	"encoding/json"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

// Alert is one alert of a notification, as a rule in rules/ would produce it.
type Alert struct {
	Name     string
	Target   string
	Severity string
	// Extra labels, e.g. one that makes a second series of the same alert name.
	Extra    map[string]string
	StartsAt time.Time
	Resolved bool
}

// Notification renders Alertmanager's webhook payload (version 4) for one group of alerts, with
// the fields and sizes a real notification has (annotations, URLs, common labels).
func Notification(groupKey string, alerts ...Alert) []byte {
	d := notificationData(groupKey, alerts)
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // only plain strings and times: cannot fail
	}
	return b
}

type message struct {
	*template.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

func notificationData(groupKey string, alerts []Alert) message {
	m := message{Data: &template.Data{Receiver: "remediator", Status: "firing", ExternalURL: "http://alertmanager:9093"},
		Version: "4", GroupKey: groupKey}
	for _, a := range alerts {
		labels := template.KV{
			"alertname": a.Name, "service": a.Target, "container": a.Target,
			"instance": a.Target + ":8080", "job": "demo-services", "severity": a.Severity, "remediation": "auto",
		}
		for k, v := range a.Extra {
			labels[k] = v
		}
		status := string(model.AlertFiring)
		ends := time.Time{}
		if a.Resolved {
			status, ends = string(model.AlertResolved), a.StartsAt.Add(time.Minute)
		}
		ls := model.LabelSet{}
		for k, v := range labels {
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
		m.Alerts = append(m.Alerts, template.Alert{
			Status: status, Labels: labels,
			Annotations: template.KV{
				"summary":     a.Name + " on " + a.Target,
				"description": "measured value 0.93 of the limit on " + a.Target,
				"runbook":     "README.md#" + a.Name,
			},
			StartsAt: a.StartsAt, EndsAt: ends,
			GeneratorURL: "http://prometheus:9090/graph?g0.expr=" + a.Name,
			Fingerprint:  ls.Fingerprint().String(),
		})
	}
	if len(alerts) > 0 {
		m.GroupLabels = template.KV{"alertname": alerts[0].Name, "service": alerts[0].Target, "instance": alerts[0].Target + ":8080"}
		m.CommonLabels = m.GroupLabels
		m.CommonAnnotations = template.KV{}
		if alerts[0].Resolved {
			m.Status = string(model.AlertResolved)
		}
	}
	return m
}
