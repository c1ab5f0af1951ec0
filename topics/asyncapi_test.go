package topics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// asyncAPIFile is the AsyncAPI description of this package's contract, for tools that read
// AsyncAPI and JSON Schema. The tests below hold the two to each other.
const asyncAPIFile = "../docs/asyncapi.yaml"

// asyncAPICases holds payloads per kind (Kind.String()) in four folders: valid (the readers
// and the schema accept it), invalid (both reject it), reader_only and schema_only (one side
// accepts it, for a reason the README there gives).
const asyncAPICases = "testdata/asyncapi"

// messageOf names each kind's message in components/messages.
var messageOf = map[Kind]string{
	KindStatus:   "status",
	KindMetrics:  "metrics",
	KindButton:   "button",
	KindLED:      "ledCommand",
	KindLEDState: "ledState",
	KindPower:    "power",
	KindAlert:    "alert",
}

// plainWords are the kinds whose readers also take plain words (DecodeStatus, ParseLEDCommand).
var plainWords = map[Kind]bool{KindStatus: true, KindLED: true}

// goTypeOf gives each kind's Go payload type and the name of its object schema in
// components/schemas.
var goTypeOf = map[Kind]struct {
	schema string
	typ    reflect.Type
}{
	KindStatus:       {"Status", reflect.TypeFor[Status]()},
	KindMetrics:      {"Metrics", reflect.TypeFor[Metrics]()},
	KindButton:       {"ButtonEvent", reflect.TypeFor[ButtonEvent]()},
	KindLED:          {"LEDCommand", reflect.TypeFor[LEDCommand]()},
	KindLEDState:     {"LEDState", reflect.TypeFor[LEDState]()},
	KindPower:        {"Power", reflect.TypeFor[Power]()},
	KindAlert:        {"Alert", reflect.TypeFor[Alert]()},
	KindLayout:       {"Layout", reflect.TypeFor[Layout]()},
	KindSystem:       {"SystemCommand", reflect.TypeFor[SystemCommand]()},
	KindSystemResult: {"SystemResult", reflect.TypeFor[SystemResult]()},
}

// channelOf gives each channel's kind; the two alert channels differ by having a MAC.
var channelOf = map[string]Kind{
	"status":       KindStatus,
	"metrics":      KindMetrics,
	"button":       KindButton,
	"led":          KindLED,
	"ledState":     KindLEDState,
	"power":        KindPower,
	"piAlert":      KindAlert,
	"rowAlert":     KindAlert,
	"layout":       KindLayout,
	"system":       KindSystem,
	"systemResult": KindSystemResult,
}

type asyncAPIDoc struct {
	root     map[string]any // as JSON would have it: numbers are json.Number
	compiler *jsonschema.Compiler
}

func loadAsyncAPI(t *testing.T) *asyncAPIDoc {
	t.Helper()
	src, err := os.ReadFile(asyncAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	var y any
	if err := yaml.Unmarshal(src, &y); err != nil {
		t.Fatalf("%s: %v", asyncAPIFile, err)
	}
	// Through JSON, so that the validator sees what a JSON tool would: uint64 bounds exact,
	// numbers as json.Number.
	j, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("%s as JSON: %v", asyncAPIFile, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	root, ok := doc.(map[string]any)
	if !ok || root["asyncapi"] != "3.0.0" {
		t.Fatalf("%s: not an AsyncAPI 3.0.0 document", asyncAPIFile)
	}
	c := jsonschema.NewCompiler()
	// AsyncAPI's default schema format is a superset of JSON Schema draft 07.
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	if err := c.AddResource("asyncapi.json", doc); err != nil {
		t.Fatal(err)
	}
	return &asyncAPIDoc{root: root, compiler: c}
}

// at returns the value at a JSON pointer such as "/components/schemas/Status".
func (d *asyncAPIDoc) at(t *testing.T, ptr string) any {
	t.Helper()
	var v any = d.root
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %s is not an object at %q", asyncAPIFile, ptr, tok)
		}
		if v, ok = m[tok]; !ok {
			t.Fatalf("%s: no %s", asyncAPIFile, ptr)
		}
	}
	return v
}

func (d *asyncAPIDoc) object(t *testing.T, ptr string) map[string]any {
	t.Helper()
	m, ok := d.at(t, ptr).(map[string]any)
	if !ok {
		t.Fatalf("%s: %s is not an object", asyncAPIFile, ptr)
	}
	return m
}

// deref follows a {"$ref": "#/..."} to what it points at; anything else is returned as it is.
func (d *asyncAPIDoc) deref(t *testing.T, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		return d.object(t, strings.TrimPrefix(ref, "#"))
	}
	return m
}

func (d *asyncAPIDoc) payloadSchema(t *testing.T, k Kind) *jsonschema.Schema {
	t.Helper()
	s, err := d.compiler.Compile("asyncapi.json#/components/messages/" + messageOf[k] + "/payload")
	if err != nil {
		t.Fatalf("%s: message %s: %v", asyncAPIFile, messageOf[k], err)
	}
	return s
}

// instance is what the schema of kind k is applied to: the JSON value of the payload, or, for
// a kind that takes plain words and a payload that does not begin with '{', the payload text
// (the rule docs/asyncapi.yaml states). ok is false for a payload that is not JSON.
func instance(k Kind, payload []byte) (v any, ok bool) {
	if plainWords[k] {
		if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
			return string(payload), true
		}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	return v, err == nil
}

// schemaAccepts reports whether the payload schema accepts payload, and why not.
func schemaAccepts(s *jsonschema.Schema, k Kind, payload []byte) (bool, string) {
	v, ok := instance(k, payload)
	if !ok {
		return false, "not JSON"
	}
	if err := s.Validate(v); err != nil {
		return false, err.Error()
	}
	return true, ""
}

type asyncAPICase struct {
	name    string // path under testdata
	kind    Kind
	payload []byte
	reader  bool // topics' decoder must accept it
	schema  bool // the message's payload schema must accept it
}

// loadAsyncAPICases reads testdata/asyncapi/<kind>/<folder>/* and the canonical payloads of
// TestGoldenPayloads, which are valid.
func loadAsyncAPICases(t *testing.T) []asyncAPICase {
	t.Helper()
	folders := map[string][2]bool{ // reader, schema
		"valid":       {true, true},
		"invalid":     {false, false},
		"reader_only": {true, false},
		"schema_only": {false, true},
	}
	var cases []asyncAPICase
	for k := range messageOf {
		seen := map[string]int{}
		for folder, want := range folders {
			dir := filepath.Join(asyncAPICases, k.String(), folder)
			entries, err := os.ReadDir(dir)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				p := filepath.Join(dir, e.Name())
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				cases = append(cases, asyncAPICase{name: p, kind: k, payload: b, reader: want[0], schema: want[1]})
				seen[folder]++
			}
		}
		if seen["valid"] == 0 || seen["invalid"] == 0 {
			t.Errorf("%s/%s: want valid and invalid payloads for every kind; have %v", asyncAPICases, k, seen)
		}
	}
	kindOfType := map[reflect.Type]Kind{}
	for k, g := range goTypeOf {
		kindOfType[g.typ] = k
	}
	for _, g := range goldenPayloads {
		k, ok := kindOfType[reflect.TypeOf(g.value)]
		if !ok {
			t.Fatalf("golden %s: no kind for %T", g.file, g.value)
		}
		b, err := os.ReadFile(filepath.Join("testdata", g.file))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, asyncAPICase{name: filepath.Join("testdata", g.file), kind: k, payload: b, reader: true, schema: true})
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].name < cases[j].name })
	return cases
}

// TestAsyncAPIPayloads: each payload in testdata/asyncapi and each golden payload is accepted
// by its message's schema in docs/asyncapi.yaml exactly when the topics decoder accepts it,
// except for the cases filed as reader_only or schema_only, which must keep disagreeing the
// way their folder says.
func TestAsyncAPIPayloads(t *testing.T) {
	d := loadAsyncAPI(t)
	schemas := map[Kind]*jsonschema.Schema{}
	for k := range messageOf {
		schemas[k] = d.payloadSchema(t, k)
	}
	for _, c := range loadAsyncAPICases(t) {
		t.Run(c.name, func(t *testing.T) {
			readerErr := Validate(c.kind, c.payload)
			schemaOK, why := schemaAccepts(schemas[c.kind], c.kind, c.payload)
			if (readerErr == nil) != c.reader {
				t.Errorf("topics.Validate(%s) = %v; want accepted: %v", c.kind, readerErr, c.reader)
			}
			if schemaOK != c.schema {
				t.Errorf("schema of message %s accepts it: %v, want %v\n%s", messageOf[c.kind], schemaOK, c.schema, why)
			}
		})
	}
}

// TestAsyncAPIExamples: every example in the messages of docs/asyncapi.yaml is a payload both
// the schema and the topics decoder accept.
func TestAsyncAPIExamples(t *testing.T) {
	d := loadAsyncAPI(t)
	for k, name := range messageOf {
		s := d.payloadSchema(t, k)
		examples, _ := d.object(t, "/components/messages/"+name)["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("message %s has no examples", name)
		}
		for i, e := range examples {
			ex, _ := e.(map[string]any)
			var payload []byte
			if w, ok := ex["payload"].(string); ok {
				payload = []byte(w)
			} else {
				var err error
				if payload, err = json.Marshal(ex["payload"]); err != nil {
					t.Fatal(err)
				}
			}
			if err := Validate(k, payload); err != nil {
				t.Errorf("message %s example %d (%v): topics.Validate: %v", name, i, ex["name"], err)
			}
			if ok, why := schemaAccepts(s, k, payload); !ok {
				t.Errorf("message %s example %d (%v): schema: %s", name, i, ex["name"], why)
			}
		}
	}
}

// TestAsyncAPISchemasMatchGoTypes: every property of a payload schema is a json field of its
// Go type and the reverse, with a matching JSON type; a field the schema requires is one
// Encode always writes (no omitempty or omitzero).
func TestAsyncAPISchemasMatchGoTypes(t *testing.T) {
	d := loadAsyncAPI(t)
	typed := map[string]bool{}
	for _, g := range goTypeOf {
		typed[g.schema] = true
	}
	for name, s := range d.object(t, "/components/schemas") {
		if _, ok := s.(map[string]any)["properties"]; ok && !typed[name] {
			t.Errorf("schema %s has properties but no Go type in goTypeOf", name)
		}
	}
	for _, g := range goTypeOf {
		name, typ := g.schema, g.typ
		t.Run(name, func(t *testing.T) {
			s := d.object(t, "/components/schemas/"+name)
			props, _ := s["properties"].(map[string]any)
			required := map[string]bool{}
			for _, r := range asSlice(s["required"]) {
				required[r.(string)] = true
			}
			fields := map[string]reflect.StructField{}
			omit := map[string]bool{}
			for f := range typ.Fields() {
				if !f.IsExported() {
					continue
				}
				tag := f.Tag.Get("json")
				if tag == "-" {
					continue
				}
				n, opts, _ := strings.Cut(tag, ",")
				if n == "" {
					n = f.Name
				}
				fields[n] = f
				omit[n] = strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
			}
			for n := range props {
				if _, ok := fields[n]; !ok {
					t.Errorf("schema %s has property %q, which %s has no json field for", name, n, typ)
				}
			}
			for n, f := range fields {
				p, ok := props[n]
				if !ok {
					t.Errorf("%s.%s (json %q) is not in schema %s", typ, f.Name, n, name)
					continue
				}
				if got, want := d.jsonType(t, p), goJSONType(f.Type); got != want {
					t.Errorf("schema %s property %q: type %q, but %s.%s is %s (%q)", name, n, got, typ, f.Name, f.Type, want)
				}
			}
			for n := range required {
				if _, ok := props[n]; !ok {
					t.Errorf("schema %s requires %q, which it does not define", name, n)
				}
				if omit[n] {
					t.Errorf("schema %s requires %q, but Encode may leave it out (omitempty/omitzero)", name, n)
				}
			}
		})
	}
}

// jsonType is the JSON type a property schema says, following $ref and a one-element allOf,
// with "date-time" for a timestamp.
func (d *asyncAPIDoc) jsonType(t *testing.T, p any) string {
	t.Helper()
	m := d.deref(t, p)
	if all := asSlice(m["allOf"]); len(all) == 1 && m["type"] == nil {
		m = d.deref(t, all[0])
	}
	typ, _ := m["type"].(string)
	if typ == "string" && m["format"] == "date-time" {
		return "date-time"
	}
	return typ
}

func goJSONType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "date-time"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "integer"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Slice:
		return "array"
	}
	return t.String()
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

var paramRE = regexp.MustCompile(`\{([a-z]+)\}`)

// TestAsyncAPIChannelsMatchParse: every channel's address is the topic topics builds for its
// kind, and its address with each parameter's x-pattern matches a topic exactly when Parse
// accepts it, as the same kind and with the same row, MAC and rule.
func TestAsyncAPIChannelsMatchParse(t *testing.T) {
	d := loadAsyncAPI(t)
	channels := d.object(t, "/channels")
	type channel struct {
		name string
		kind Kind
		re   *regexp.Regexp
	}
	var all []channel
	for name := range channels {
		if _, ok := channelOf[name]; !ok {
			t.Errorf("channel %s has no kind in channelOf", name)
		}
	}
	for name, k := range channelOf {
		ch := d.object(t, "/channels/"+name)
		addr, _ := ch["address"].(string)
		want := Topic{Kind: k, Row: "{row}", MAC: "{mac}", Rule: "{rule}"}
		if name == "rowAlert" {
			want.MAC = ""
		}
		if addr != want.String() {
			t.Errorf("channel %s: address %q, topics builds %q", name, addr, want.String())
		}
		params, _ := ch["parameters"].(map[string]any)
		var used []string
		// Build the expression part by part: literal text quoted, each {name} its pattern.
		var b strings.Builder
		b.WriteString("^")
		last := 0
		for _, m := range paramRE.FindAllStringSubmatchIndex(addr, -1) {
			b.WriteString(regexp.QuoteMeta(addr[last:m[0]]))
			p := addr[m[2]:m[3]]
			used = append(used, p)
			pattern, _ := d.deref(t, params[p])["x-pattern"].(string)
			if pattern == "" {
				t.Fatalf("channel %s: parameter %s has no x-pattern", name, p)
			}
			fmt.Fprintf(&b, "(?P<%s>%s)", p, strings.TrimSuffix(strings.TrimPrefix(pattern, "^"), "$"))
			last = m[1]
		}
		b.WriteString(regexp.QuoteMeta(addr[last:]) + "$")
		defined := slices.Sorted(maps.Keys(params))
		slices.Sort(used)
		if !slices.Equal(used, defined) {
			t.Errorf("channel %s: address uses parameters %v, defines %v", name, used, defined)
		}
		all = append(all, channel{name, k, regexp.MustCompile(b.String())})
	}

	// The payload fields that carry a topic's values use the parameters' patterns.
	for param, field := range map[string]string{"row": "row", "rule": "rule"} {
		got, _ := d.object(t, "/components/parameters/"+param)["x-pattern"].(string)
		want, _ := d.object(t, "/components/schemas/Alert/properties/"+field)["pattern"].(string)
		if got != want {
			t.Errorf("parameter %s x-pattern %q, Alert.%s pattern %q", param, got, field, want)
		}
	}

	const mac = "b827eb3f1a2c"
	row32, rule32 := strings.Repeat("r", MaxRowLen), strings.Repeat("x", MaxRuleLen)
	samples := []string{
		StatusTopic("r1", mac), MetricsTopic("row-a_2", mac), ButtonTopic(row32, mac), LEDTopic(mac),
		LEDStateTopic("0", "0123456789ab"), PowerTopic("r1"), PowerTopic(mac), AlertTopic("r1", mac, "temp_high"),
		AlertTopic("r1", "", "power_band"), AlertTopic(row32, mac, rule32), AlertTopic("alert", "", "x"),
		AlertTopic(mac, "", "offline"), AlertTopic("r1", "", "status"), LayoutTopic("r1"), LayoutTopic(mac), SystemTopic(mac), "rack/r1/system",
		"rack/r1/layout/x", "rack/r1/" + mac + "/layout",
		// not pirack topics
		"", "rack", "rack/", "rack/r1", "Rack/r1/" + mac + "/status", "rack/r1/" + mac + "/status/",
		"rack/R1/" + mac + "/status", "rack/" + row32 + "r/" + mac + "/status", "rack//" + mac + "/status",
		"rack/r 1/" + mac + "/metrics", "rack/+/" + mac + "/status", "rack/#",
		"rack/r1/B827EB3F1A2C/status", "rack/r1/b827eb3f1a2/status", "rack/r1/b827eb3f1a2c0/button",
		"rack/r1/b8:27:eb:3f:1a:2c/status", "rack/r1/" + mac + "/led", "rack/r1/led", "rack/B827EB3F1A2C/led",
		"rack/" + mac + "/led/x", "rack/r1/" + mac + "/power", "rack/r1/power/x", "rack/r1/" + mac + "/alert",
		"rack/r1/" + mac + "/alert/", "rack/r1/" + mac + "/alert/temp-high", "rack/r1/alert/Temp_high",
		"rack/r1/alert/" + rule32 + "x", "rack/r1/" + mac + "/alert/temp_high/x", "rack/r1/" + mac + "/selected",
		"rack/r1/" + mac + "/state", "$SYS/broker/uptime", "homeassistant/status",
	}
	for _, topic := range samples {
		parsed, err := Parse(topic)
		var matched []channel
		for _, ch := range all {
			if ch.re.MatchString(topic) {
				matched = append(matched, ch)
			}
		}
		if err != nil {
			for _, ch := range matched {
				t.Errorf("%q: channel %s matches, but Parse says %v", topic, ch.name, err)
			}
			continue
		}
		if len(matched) != 1 {
			t.Errorf("%q: Parse gives %+v; %d channels match, want 1", topic, parsed, len(matched))
			continue
		}
		ch := matched[0]
		if ch.kind != parsed.Kind || (ch.name == "rowAlert") != (parsed.Kind == KindAlert && parsed.MAC == "") {
			t.Errorf("%q: channel %s matches, Parse gives %+v", topic, ch.name, parsed)
		}
		m := ch.re.FindStringSubmatch(topic)
		got := Topic{Kind: ch.kind}
		for i, n := range ch.re.SubexpNames() {
			switch n {
			case "row":
				got.Row = m[i]
			case "mac":
				got.MAC = m[i]
			case "rule":
				got.Rule = m[i]
			}
		}
		if got != parsed {
			t.Errorf("%q: channel %s gives %+v, Parse %+v", topic, ch.name, got, parsed)
		}
	}
}

// TestAsyncAPIOperations: each channel has one operation, whose messages are that channel's.
func TestAsyncAPIOperations(t *testing.T) {
	d := loadAsyncAPI(t)
	perChannel := map[string]int{}
	for name, o := range d.object(t, "/operations") {
		op, _ := o.(map[string]any)
		ref, _ := op["channel"].(map[string]any)["$ref"].(string)
		ch := strings.TrimPrefix(ref, "#/channels/")
		d.object(t, "/channels/"+ch)
		perChannel[ch]++
		if a := op["action"]; a != "send" && a != "receive" {
			t.Errorf("operation %s: action %v", name, a)
		}
		for _, m := range asSlice(op["messages"]) {
			mref, _ := m.(map[string]any)["$ref"].(string)
			if !strings.HasPrefix(mref, ref+"/messages/") {
				t.Errorf("operation %s: message %s is not one of channel %s's", name, mref, ch)
			}
			d.at(t, strings.TrimPrefix(mref, "#"))
		}
		b, _ := op["bindings"].(map[string]any)["mqtt"].(map[string]any)
		if b["qos"] == nil || b["retain"] == nil {
			t.Errorf("operation %s: want an mqtt binding with qos and retain", name)
		}
	}
	for ch := range channelOf {
		if perChannel[ch] != 1 {
			t.Errorf("channel %s has %d operations, want 1", ch, perChannel[ch])
		}
	}
}
