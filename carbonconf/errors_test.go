package carbonconf

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWarningsJSON(t *testing.T) {
	c, err := ReadLBConf(strings.NewReader("services {\n  esb {\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.File = "lb.conf"
	for _, w := range c.Warnings {
		w.File = c.File
	}
	b, err := json.Marshal(c.Warnings)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"File":"lb.conf","Line":2,"Col":3,"Err":"block \"esb\" is not closed: expected \"}\" before end of file"},` +
		`{"File":"lb.conf","Line":1,"Col":1,"Err":"block \"services\" is not closed: expected \"}\" before end of file"}]`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var back []*ParseError
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0].Error() != c.Warnings[0].Error() || back[1].Error() != c.Warnings[1].Error() {
		t.Errorf("decoded %v, want %v", back, c.Warnings)
	}
	if b, err := json.Marshal(&ParseError{Line: 1, Col: 1}); err != nil || string(b) != `{"File":"","Line":1,"Col":1,"Err":""}` {
		t.Errorf("nil Err: %s, %v", b, err)
	}
}
