// Package nodered tests the Node-RED example flow (docs/examples/node-red-pirack.json) in a
// real Node-RED 4 against a control center built by package controlcenter, with agents on
// simulated GPIO. It is a package of its own so that Node-RED's slow start runs once, beside
// the other end-to-end tests. It has no non-test code.
package nodered
