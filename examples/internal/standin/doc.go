// Package standin is a stand-in for a WSO2 Carbon node in the example
// programs: an HTTP handler that issues and remembers JSESSIONID sessions the
// way Tomcat does and says which node answered, a Server that runs one on a
// listener and joins it to a membership cluster, and a Session that plays
// one browser user in front of a balancer.
//
// A Node answers every path. A request without a session it knows gets a new
// one:
//
//	Set-Cookie: JSESSIONID=<32 upper-case hex digits>; Path=/; HttpOnly
//
// and every response names the node in the X-Carbon-Node header and in the
// body, so a client can tell where the balancer sent it.
package standin
