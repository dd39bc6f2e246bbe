// Package tomcat runs real Apache Tomcat 10 instances for the example
// programs' end-to-end tests, the way an operator sets them up on Debian:
// each instance is a CATALINA_BASE made by tomcat10-instance-create (package
// tomcat10-user), with its own loopback HTTP port, its jvmRoute on the
// Engine element of conf/server.xml, and a small JSP application, the
// counter page, deployed as its ROOT context.
//
// The counter page (Path) keeps a counter in the HTTP session and prints the
// node's jvmRoute, the counter, the session id and a link to itself made by
// response.encodeURL, so a client without cookies gets Tomcat's
// ";jsessionid=" URL rewriting. ParsePage reads it; a Session plays one
// user, by cookie or by links.
//
// An Instance runs its JVM in a process group of its own; Kill sends that
// group SIGKILL (a crash), and the test's cleanup kills it in any case, so
// no JVM outlives a test. The JVM also gets SIGKILL when the test binary
// dies. When a test fails, the cleanup logs the tail of the instance's
// console output.
//
// Require skips a test when Tomcat or Java is not installed, unless the
// environment variable CI is set: there the test fails, since CI installs
// them (.ci/run). go test -short skips them.
package tomcat
