import Foundation
import ParleyProbe

/// Headless Chromium driven through chromedriver's W3C WebDriver API (the
/// protocol Selenium speaks), for the browser tests: pages are opened,
/// scripts run in them, screenshots taken.
public struct Browser: Sendable {
    private let driver: String
    private let session: String

    /// Starts chromedriver, opens `count` browsers, runs `body`, and closes
    /// them all (chromedriver and every Chromium it started) even if `body` throws.
    public static func with<T: Sendable>(_ count: Int, _ body: ([Browser]) async throws -> T) async throws -> T {
        let port = try FreePort.next()
        let directory = try TestRun.scratch("chromedriver")
        guard let executable = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first(where: FileManager.default.isExecutableFile) else {
            throw TestSupportError("chromedriver is not installed: run ops/setup")
        }
        let process = try ChildProcess(
            name: "chromedriver", executable: executable, arguments: ["--port=\(port)"], logPath: "\(directory)/chromedriver.log"
        )
        let driver = "http://127.0.0.1:\(port)"
        var browsers: [Browser] = []
        do {
            try await FreePort.waitUntilAccepting(port, server: process)
            for _ in 0..<count { browsers.append(try await open(driver: driver, profile: try TestRun.scratch("chromium"))) }
            let result = try await body(browsers)
            await close(browsers, process)
            return result
        } catch {
            await close(browsers, process)
            throw error
        }
    }

    private static func close(_ browsers: [Browser], _ process: ChildProcess) async {
        for browser in browsers { _ = try? await browser.call("DELETE", "") }
        await process.kill9Tree()
    }

    private static func open(driver: String, profile: String) async throws -> Browser {
        let answer = try await request(driver, "POST", "/session", [
            "capabilities": ["alwaysMatch": [
                "browserName": "chrome",
                // The cluster's certificates come from its own authority, which this profile does not know.
                "acceptInsecureCerts": true,
                "goog:chromeOptions": [
                    "binary": FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") ? "/usr/bin/chromium" : "/usr/lib/chromium/chromium",
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--window-size=1200,760", "--user-data-dir=\(profile)",
                    ],
                ],
            ]],
        ])
        guard let value = answer as? [String: Any], let session = value["sessionId"] as? String else {
            throw TestSupportError("chromedriver opened no session: \(String(describing: answer))")
        }
        return Browser(driver: driver, session: session)
    }

    /// Loads `url` and waits for the page's load event.
    public func open(_ url: String) async throws {
        _ = try await call("POST", "/url", ["url": url])
    }

    /// Runs `script` (a function body; `arguments[i]` are `arguments`) and
    /// returns its result as JSON text (`null` for undefined).
    @discardableResult
    public func run(_ script: String, _ arguments: [String] = []) async throws -> String {
        let value = try await call("POST", "/execute/sync", ["script": script, "args": arguments])
        return String(decoding: try JSONSerialization.data(withJSONObject: value ?? NSNull(), options: [.fragmentsAllowed, .sortedKeys]), as: UTF8.self)
    }

    /// The strings a script returns (an array of strings).
    public func strings(_ script: String, _ arguments: [String] = []) async throws -> [String] {
        try JSONDecoder().decode([String].self, from: Data(try await run(script, arguments).utf8))
    }

    /// The string a script returns.
    public func string(_ script: String, _ arguments: [String] = []) async throws -> String {
        try JSONDecoder().decode(String.self, from: Data(try await run(script, arguments).utf8))
    }

    /// A PNG of the window, written to `path`.
    public func screenshot(to path: String) async throws {
        guard let base64 = try await call("GET", "/screenshot") as? String, let png = Data(base64Encoded: base64) else {
            throw TestSupportError("no screenshot")
        }
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true
        )
        try png.write(to: URL(fileURLWithPath: path))
    }

    private func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        try await Self.request(driver, method, "/session/\(session)\(path)", body)
    }

    /// One WebDriver command: its `value`, or the error it answered.
    /// (Over ParleyProbe's HTTP/1.1: Foundation's client on Linux refuses
    /// chromedriver's header lines, which have no space after the colon.)
    private static func request(_ driver: String, _ method: String, _ path: String, _ body: [String: Any]?) async throws -> Any? {
        let text = try body.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) } ?? ""
        let address = String(driver.dropFirst("http://".count))
        let contentType = body == nil ? "" : "Content-Type: application/json\r\n"
        // chromedriver keeps the connection open: the answer is whole once its Content-Length arrived.
        let raw = try await TCPProbe.exchange(
            address, timeout: .seconds(60),
            request: "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\n\(contentType)Content-Length: \(text.utf8.count)\r\n\r\n\(text)",
            complete: { answer in
                guard let end = answer.range(of: "\r\n\r\n") else { return false }
                let head = answer[..<end.lowerBound].lowercased()
                guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                      let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) else { return false }
                return answer[end.upperBound...].utf8.count >= length
            }
        )
        guard let end = raw.range(of: "\r\n\r\n") else { throw TestSupportError("WebDriver \(method) \(path): no answer") }
        let status = Int(raw.prefix(while: { $0 != "\r" }).split(separator: " ").dropFirst().first ?? "") ?? 0
        let answer = String(raw[end.upperBound...])
        guard status == 200 else { throw TestSupportError("WebDriver \(method) \(path): \(status) \(answer.prefix(2000))") }
        let value = ((try? JSONSerialization.jsonObject(with: Data(answer.utf8), options: [.fragmentsAllowed])) as? [String: Any])?["value"]
        return value is NSNull ? nil : value
    }
}
