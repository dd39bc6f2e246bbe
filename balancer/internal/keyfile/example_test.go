package keyfile_test

import (
	"fmt"
	"os"

	"github.com/carbonlb/carbonlb/balancer/internal/keyfile"
)

// A keystore made by keytool passes; parameters asking for 2^31-1
// iterations, which would keep a decoder busy for hours, are refused.
func ExampleCheckPKCS12() {
	b, err := os.ReadFile("../../testdata/keystores/wso2carbon.p12")
	if err != nil {
		panic(err)
	}
	fmt.Println(keyfile.CheckPKCS12(b))
	// SEQUENCE { OCTET STRING salt, INTEGER iterations }, as PBE parameters.
	params := []byte{0x30, 0x0c, 0x04, 0x04, 1, 2, 3, 4, 0x02, 0x04, 0x7f, 0xff, 0xff, 0xff}
	fmt.Println(keyfile.CheckPKCS12(params))
	// Output:
	// <nil>
	// PKCS#12: more than 2000000 key-derivation iterations
}
