// Package enrollapi is the enrolment exchange between `pirack-agent enroll` and the control
// center (POST /api/enroll): the request, the answer, and the client. It links neither the
// users store nor the token store, so the agent can use it.
package enrollapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Path is the endpoint on the Control Center.
const Path = "/api/enroll"

// Request is what the agent sends.
type Request struct {
	Token    string `json:"token"`
	MAC      string `json:"mac"`
	Hostname string `json:"hostname,omitempty"`
	Model    string `json:"model,omitempty"`
}

// Response is the agent's account: its user name is its MAC, and it connects to the control
// center's MQTT port on the host it enrolled with.
type Response struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Row      string `json:"row"`
	MQTTPort int    `json:"mqtt_port"`
	// MQTTSPort is the mqtts port, when the control center has one (0: none).
	MQTTSPort int `json:"mqtts_port,omitempty"`
}

// Enrol posts req to the Control Center at base and returns the account, or an error that
// says what the Control Center answered.
func Enrol(ctx context.Context, client *http.Client, base *url.URL, req Request) (Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath(Path).String(), bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		return Response{}, fmt.Errorf("cannot reach the Control Center at %s: %w; check the address (pirack enroll prints it) and that its port is open", base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return Response{}, fmt.Errorf("the Control Center refused to enrol this Pi (%s): %s", resp.Status, e.Error)
	}
	var acct Response
	if err := json.Unmarshal(raw, &acct); err != nil || acct.Password == "" || acct.MQTTPort == 0 {
		return Response{}, fmt.Errorf("the Control Center at %s answered something other than an enrolment (%v); is that pirack?", base, err)
	}
	return acct, nil
}
