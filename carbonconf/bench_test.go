package carbonconf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func benchFile(b *testing.B, path string) []byte {
	data, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkReadAxis2(b *testing.B) {
	data := benchFile(b, "axis2/docker-apim-p1-gateway-manager-axis2.xml") // the largest, 50 KB
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadAxis2(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadCarbon(b *testing.B) {
	data := benchFile(b, "carbon/carbon-kernel-4.4.x-carbon.xml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadCarbon(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadCatalina(b *testing.B) {
	data := benchFile(b, "catalina/carbon-kernel-4.4.x-catalina-server.xml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadCatalina(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadLBConf(b *testing.B) {
	data := benchFile(b, "loadbalancer/stratos-lb-integration-test-loadbalancer.conf")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadLBConf(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConfigureWorker measures a whole seed 001 setup of a product
// home already read into memory (about 25 edits over three files).
func BenchmarkConfigureWorker(b *testing.B) {
	home := makeHome(b, "docker-apim-p1-gateway-manager-axis2.xml", "docker-apim-p1-gateway-manager-carbon.xml", "docker-apim-p1-gateway-manager-catalina-server.xml")
	s := seedSetup()
	b.ReportAllocs()
	for b.Loop() {
		n, err := LoadNode(home)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.ConfigureWorker(s); err != nil {
			b.Fatal(err)
		}
	}
}
