// Package site runs a production-shaped balancer from files, as the WSO2
// Elastic Load Balancer runs from its loadbalancer.conf and axis2.xml: the
// services, hosts and pools of loadbalancer.conf, static backends and
// membership for the pools, HTTP and HTTPS listeners with a certificate per
// host, the status page, /healthz, a reload that re-reads the files without
// dropping a connection, and a graceful drain.
package site
