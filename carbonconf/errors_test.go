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
	want := `[{"File":"lb.conf","Line":1,"Col":1,"Err":"2 blocks are not closed, from \"services\" here to \"esb\" at line 2 col 3: expected \"}\" before end of file"}]`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var back []*ParseError
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 1 || back[0].Error() != c.Warnings[0].Error() {
		t.Errorf("decoded %v, want %v", back, c.Warnings)
	}
	if b, err := json.Marshal(&ParseError{Line: 1, Col: 1}); err != nil || string(b) != `{"File":"","Line":1,"Col":1,"Err":""}` {
		t.Errorf("nil Err: %s, %v", b, err)
	}
}
