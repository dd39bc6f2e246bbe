package metrics_test

import (
	"fmt"

	"github.com/carbonlb/carbonlb/balancer"
	"github.com/carbonlb/carbonlb/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// A program registers the collector once; every scrape of the registry
// (promhttp.HandlerFor(reg, promhttp.HandlerOpts{}) at /metrics) then reads
// the balancer's status.
func ExampleNew() {
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		panic(err)
	}
	defer lb.Close()
	lb.SetBackends("default", []balancer.Backend{{ID: "node-a", URL: "http://10.0.0.5:9763"}})

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(metrics.Config{Balancer: lb}))

	fams, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range fams {
		if f.GetName() != "carbonlb_backend_up" {
			continue
		}
		for _, m := range f.GetMetric() {
			fmt.Print(f.GetName(), "{")
			for i, l := range m.GetLabel() {
				if i > 0 {
					fmt.Print(",")
				}
				fmt.Printf("%s=%q", l.GetName(), l.GetValue())
			}
			fmt.Println("}", m.GetGauge().GetValue())
		}
	}
	// Output:
	// carbonlb_backend_up{backend="node-a",pool="default"} 1
}
