package tomcat

import (
	"fmt"
	"os"
	"path/filepath"
)

// Path is the counter page's path.
const Path = "/counter.jsp"

// counterJSP is the counter page. The node's name is the Engine's jvmRoute,
// read from Tomcat's own MBean rather than from the session id, so a page
// shows where it ran even if a session id were to lie.
const counterJSP = `<%@ page contentType="text/html; charset=UTF-8" session="true" %><%
Integer count = (Integer) session.getAttribute("count");
count = count == null ? 1 : count + 1;
session.setAttribute("count", count);
Object route = java.lang.management.ManagementFactory.getPlatformMBeanServer()
	.getAttribute(new javax.management.ObjectName("Catalina:type=Engine"), "jvmRoute");
%><!DOCTYPE html>
<title>counter</title>
<p id="node"><%= route %></p>
<p id="count"><%= count %></p>
<p id="session"><%= session.getId() %></p>
<a id="next" href="<%= response.encodeURL(request.getContextPath() + "/counter.jsp") %>">next</a>
`

// webXML compiles the counter page while the context starts
// (load-on-startup), so an instance that answers has it ready, and skips
// annotation scanning (metadata-complete).
const webXML = `<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0" metadata-complete="true">
  <servlet>
    <servlet-name>counter</servlet-name>
    <jsp-file>/counter.jsp</jsp-file>
    <load-on-startup>1</load-on-startup>
  </servlet>
  <servlet-mapping>
    <servlet-name>counter</servlet-name>
    <url-pattern>/counter.jsp</url-pattern>
  </servlet-mapping>
</web-app>
`

// contextXML keeps sessions in memory only (an empty Manager pathname: a
// restarted instance knows none of its old sessions, however it stopped)
// and does not scan the server's JARs for TLDs, which takes seconds and
// finds none.
const contextXML = `<?xml version="1.0" encoding="UTF-8"?>
<Context>
  <Manager pathname=""/>
  <JarScanner scanClassPath="false" scanManifest="false"/>
</Context>
`

// readyPath is a static file: the instance is ready once it serves it, the
// counter page having been compiled while the context started.
const readyPath = "/ready.txt"

// deploy writes the counter application as the ROOT context of the
// instance whose CATALINA_BASE is base.
func deploy(base string) error {
	root := filepath.Join(base, "webapps", "ROOT")
	for name, content := range map[string]string{
		"counter.jsp":          counterJSP,
		"ready.txt":            "ready\n",
		"WEB-INF/web.xml":      webXML,
		"META-INF/context.xml": contextXML,
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("tomcat: deploy: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("tomcat: deploy: %w", err)
		}
	}
	return nil
}
