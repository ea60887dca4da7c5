// Package alertmanager holds the Alertmanager configuration of the selfheal stack
// (alertmanager.yml). It has no Go code of its own: its tests check the file with amtool, test
// its routing per label set, and run a real Alertmanager with it to see notifications arrive
// at the right receiver, with the webhook token, inhibited and resolved as designed.
package alertmanager
