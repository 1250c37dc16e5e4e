import Foundation
import ParleyClient
import ParleyDeployment
import ParleyFault
import ParleyProbe
import ParleyRoute
import ParleyTestSupport
import Testing

/// The browser chat client (web/chat, served by every gate on `/app/`) in
/// headless Chromium, against three regions over TLS: what a person sees.
@Suite(.serialized, .timeLimit(.minutes(4))) struct BrowserTests {
    private static let route = ClusterFile.RouteSettings(probeIntervalMs: 200, probeTimeoutMs: 1_000, downAfter: 3, upAfter: 2)

    /// Screenshots go to the run directory, and to $PARLEY_SCREENSHOTS when
    /// set (`PARLEY_SCREENSHOTS=docs/screenshots` refreshes the README's).
    static func screenshot(_ browser: Browser, _ name: String) async throws {
        try await browser.screenshot(to: "\(TestRun.directory)/screenshots/\(name).png")
        if let folder = ProcessInfo.processInfo.environment["PARLEY_SCREENSHOTS"] {
            try await browser.screenshot(to: "\(folder)/\(name).png")
        }
    }

    @Test func twoPeopleChatAcrossRegionsAndOneMovesWhenItsRegionDiesWithNothingLostOrShownTwice() async throws {
        try await LocalCluster.with(["eu", "us", "ap"], route: Self.route, tls: true) { cluster in
            try await Browser.with(2) { browsers in
                let (ann, bob) = (ChatPage(browsers[0], user: "ann"), ChatPage(browsers[1], user: "bob"))
                try await ann.open(cluster["eu"], token: try await cluster["eu"].token(for: "ann"))
                try await bob.open(cluster["us"], token: try await cluster["us"].token(for: "bob"))
                try await expectEventually({ try await ann.statusLine }, { $0.contains("connected to region eu") }, "ann connected to eu")
                try await expectEventually({ try await bob.statusLine }, { $0.contains("connected to region us") }, "bob connected to us")
                #expect(try await eventually {
                    try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" }
                }, "each sign-in registered its user everywhere")

                // ann writes first; bob's list shows the conversation with three unread.
                try await ann.chat(with: "bob")
                for text in ["before 1", "before 2", "before 3"] { try await ann.send(text) }
                try await expectEventually({ try await bob.conversations }, { $0.contains { $0.hasPrefix("ann3") } }, "bob's list: three unread from ann")
                try await bob.openConversation("d:ann:bob")
                try await expectEventually({ try await bob.messages }, { $0 == ["before 1", "before 2", "before 3"] }, "bob reads them")
                try await expectEventually({ try await bob.conversations }, { $0.first?.hasPrefix("ann3") == false }, "read: no unread left")
                // Read state, typing, an edit.
                try await expectEventually({ try await ann.readMarks }, { $0 == 3 }, "ann sees bob read her three messages")
                try await bob.type("rep")
                try await expectEventually({ try await ann.typing }, { $0 == "bob is typing…" }, "ann sees bob typing")
                try await ann.edit("before 3", to: "before 3, edited")
                try await expectEventually({ try await bob.messages }, { $0.last == "before 3, edited" }, "bob sees the edit")
                try await bob.send("reply 1")
                try await expectEventually({ try await ann.messages }, { $0.last == "reply 1" }, "ann gets bob's reply")

                // eu dies with a send on its way; ann's page moves to another region.
                try await ann.send("in flight")
                await cluster["eu"].killAll()
                try await expectEventually({ try await ann.statusLine }, {
                    $0.contains("connected to region") && !$0.contains("region eu") && !$0.contains("region —")
                }, "ann's page reconnected in another region", within: .seconds(60))
                for text in ["after 1", "after 2"] { try await ann.send(text) }
                try await bob.send("reply 2")

                let expected = ["before 1", "before 2", "before 3, edited", "reply 1", "in flight", "after 1", "after 2", "reply 2"]
                for page in [ann, bob] {
                    try await expectEventually({ try await page.messages }, { Set($0) == Set(expected) }, "\(page.user) sees every message")
                    let shown = try await page.messages
                    #expect(shown.count == Set(shown).count, "\(page.user) sees no message twice: \(shown)")
                    let pending = try await page.pending
                    #expect(pending.isEmpty, "no send left pending on \(page.user)'s page: \(pending)")
                }
                try await Self.screenshot(browsers[0], "chat")
            }
        }
    }
}

extension BrowserTests {
    /// History paging, a group made from the page, and a recall seen by the other member.
    @Test func historyPagesAGroupIsMadeFromThePageAndARecallReachesTheOtherMember() async throws {
        try await LocalCluster.with(["eu", "us"], route: Self.route, tls: true) { cluster in
            let carol = try await cluster["eu"].connect("carol")
            try await Browser.with(2) { browsers in
                let (ann, bob) = (ChatPage(browsers[0], user: "ann"), ChatPage(browsers[1], user: "bob"))
                try await ann.open(cluster["eu"], token: try await cluster["eu"].token(for: "ann"))
                try await bob.open(cluster["us"], token: try await cluster["us"].token(for: "bob"))
                try await expectEventually({ try await ann.statusLine }, { $0.contains("connected to region eu") }, "ann connected")
                try await expectEventually({ try await bob.statusLine }, { $0.contains("connected to region us") }, "bob connected")
                #expect(try await eventually {
                    try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "3" }
                }, "every sign-in registered everywhere")

                // 40 messages from carol: the page shows the newest 30, then the rest on asking.
                for index in 1...40 { _ = try await carol.client.send(to: .user("ann"), body: "old \(index)") }
                try await expectEventually({ try await ann.conversations }, { $0.contains { $0.hasPrefix("carol40") } }, "forty unread from carol")
                try await ann.openConversation("d:ann:carol")
                try await expectEventually({ try await ann.messages.count }, { $0 == 40 }, "the live pushes and the newest page")
                // A fresh page knows only what history gives it: reload, open, page back.
                try await ann.browser.run("location.reload()")
                try await expectEventually({ try await ann.messages }, { $0.isEmpty }, "a new page")
                try await expectEventually({ try await ann.statusLine }, { $0.contains("connected to region eu") }, "ann connected again")
                try await expectEventually({ try await ann.conversations }, { $0.contains { $0.hasPrefix("carol") } }, "the list from the server")
                try await ann.openConversation("d:ann:carol")
                try await expectEventually({ try await ann.messages }, { $0.count == 30 && $0.last == "old 40" }, "the newest page of 30")
                try await ann.browser.run("document.querySelector('#older').click()")
                try await expectEventually({ try await ann.messages }, { $0 == (1...40).map { "old \($0)" } }, "all forty, in order, once")

                // A group made from ann's page; bob sees it in his list and the message in it.
                try await ann.fill("#new-group-name", "team")
                try await ann.fill("#new-group-members", "bob")
                try await ann.submit("#new-group")
                try await expectEventually({ try await ann.browser.string("return document.querySelector('#conversation-title').textContent") }, { $0 == "team" }, "ann's page opened the group")
                try await ann.send("hello team")
                try await expectEventually({ try await bob.conversations }, { $0.contains { $0.hasPrefix("team") } }, "bob's list shows the group")
                try await bob.browser.run("[...document.querySelectorAll('.conversation')].find(c => c.querySelector('.name').textContent === 'team').click()")
                try await expectEventually({ try await bob.messages }, { $0 == ["hello team"] }, "bob reads the group")
                try await bob.send("oops")
                try await expectEventually({ try await ann.messages }, { $0 == ["hello team", "oops"] }, "ann gets bob's message")
                try await bob.browser.run("""
                    const mine = [...document.querySelectorAll('#messages .message')].find(m => m.querySelector('.body').textContent === 'oops');
                    mine.querySelector('button.recall').click();
                    """)
                try await expectEventually({ try await ann.messages }, { $0 == ["hello team", ""] }, "the recall reaches ann")
                let notes = try await ann.browser.strings("return [...document.querySelectorAll('#messages .message .note')].map(e => e.textContent)")
                #expect(notes == ["message recalled"])
            }
            await carol.stop()
        }
    }
}

extension BrowserTests {
    /// The operator's page: a drained region, then the lag of a region cut
    /// off from its peer rising while the peer writes, and falling after the heal.
    @Test func theDashboardShowsADrainedRegionAndALagThatRisesDuringAPartitionAndFallsAfterHeal() async throws {
        try await LocalCluster.with(["eu", "us"], faultyLinks: true, route: Self.route) { cluster in
            let port = try FreePort.next()
            let dashboard = try ChildProcess(
                name: "dashboard", executable: LocalRegion.binary,
                arguments: [
                    "dashboard", "--regions", cluster["eu"].directory, "--listen", "127.0.0.1:\(port)",
                    "--web", LocalRegion.webClientFolder.replacingOccurrences(of: "web/chat", with: "web/dashboard"),
                    "--run", "none", "--check-every", "1",
                ],
                logPath: "\(cluster["eu"].directory)/dashboard.log"
            )
            do {
                try await watchDashboard(on: port, of: cluster, server: dashboard)
                await dashboard.stop()
            } catch {
                await dashboard.stop()
                throw error
            }
        }
    }

    private func watchDashboard(on port: Int, of cluster: LocalCluster, server dashboard: ChildProcess) async throws {
        try await FreePort.waitUntilAccepting(port, server: dashboard)
        // The API answers only the admin token; the page itself is public and holds no data.
        let denied = try await TCPProbe.http("GET", "127.0.0.1:\(port)", path: "/api/state", timeout: .seconds(5))
        #expect(denied.status == 401)
        let drain = try await TCPProbe.http("POST", "127.0.0.1:\(port)", path: "/api/drain/us", headers: [("Authorization", "Bearer wrong-token-wrong-token")], timeout: .seconds(5))
        #expect(drain.status == 401)
        #expect(try await TCPProbe.http("GET", "127.0.0.1:\(port)", path: "/", timeout: .seconds(5)).status == 200)
        let ann = try await cluster["eu"].connect("ann")
        let bob = try await cluster["us"].connect("bob")
        #expect(try await eventually { try cluster.regions.allSatisfy { try $0.postgres.psql("SELECT count(*) FROM users") == "2" } })

        try await Browser.with(1) { browsers in
            let page = browsers[0]
            try await page.open("http://127.0.0.1:\(port)/#token=\(try cluster["eu"].adminToken)")
            func cell(_ region: String, _ column: String) async throws -> String {
                try await page.string("return document.querySelector(`#regions tr[data-region='${arguments[0]}'] .${arguments[1]}`)?.textContent ?? ''", [region, column])
            }
            func lag(_ region: String, behind peer: String) async throws -> Int {
                Int(try await page.string(
                    "return document.querySelector(`#lag td[data-region='${arguments[0]}'][data-peer='${arguments[1]}']`)?.dataset.events ?? ''", [region, peer]
                )) ?? -1
            }
            try await expectEventually({ [try await cell("eu", "state"), try await cell("us", "state")] }, { $0 == ["up", "up"] }, "both regions up")
            try await expectEventually({ try await cell("eu", "clients") }, { $0 == "1" }, "ann's connection counted in eu")
            try await expectEventually({ try await page.string("return document.querySelector('#check-verdict').textContent") }, { $0 == "consistent" }, "the checker's verdict")

            // Drain us from the page: every route leaves it out, the page says so; undrain.
            try await page.run("document.querySelector(`#regions tr[data-region='us'] button.drain`).click()")
            try await expectEventually({ try await cell("us", "draining") }, { $0 == "draining" }, "us shown draining")
            let answer = try await RouteAdmin(address: cluster["eu"].file.route!, adminToken: try cluster["eu"].adminToken).status()
            #expect(answer.regions["us"]?.draining == true, "route's own status agrees")
            try await Self.screenshot(page, "dashboard-drained")
            try await page.run("document.querySelector(`#regions tr[data-region='us'] button.undrain`).click()")
            try await expectEventually({ try await cell("us", "draining") }, { $0 == "—" }, "us undrained")

            // us cut off from eu while ann writes in eu: us's lag behind eu rises, then falls after the heal.
            #expect(try await lag("us", behind: "eu") == 0)
            cluster.setLink("eu", "us", LinkFaults(state: .cut))
            for round in 0..<20 { _ = try await ann.client.send(to: .user("bob"), body: "while cut \(round)") }
            try await expectEventually({ try await lag("us", behind: "eu") }, { $0 >= 20 }, "us's lag behind eu rose")
            try await Self.screenshot(page, "dashboard")
            cluster.setLink("eu", "us", .healthy)
            try await expectEventually({ try await lag("us", behind: "eu") }, { $0 == 0 }, "us's lag fell after the heal", within: .seconds(60))
        }
        for user in [ann, bob] { await user.stop() }
    }
}

/// Waits (up to `timeout`) for `condition` to hold of what `read` returns;
/// a failure shows the last value read.
func expectEventually<T: Sendable>(
    _ read: () async throws -> T, _ condition: (T) -> Bool, _ what: String, within timeout: Duration = .seconds(30),
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    var last: T?
    var lastError: (any Error)?
    // A read that fails (a page between two documents) counts as not yet.
    let held = try await eventually(timeout) {
        do {
            let value = try await read()
            last = value
            return condition(value)
        } catch {
            lastError = error
            return false
        }
    }
    #expect(held, "\(what); last seen: \(last.map { String(describing: $0) } ?? "nothing"); last error: \(lastError.map { "\($0)" } ?? "none")",
            sourceLocation: sourceLocation)
}

/// The chat page of one browser, through the element ids of web/chat/index.html.
struct ChatPage {
    let browser: Browser
    let user: String

    init(_ browser: Browser, user: String) {
        self.browser = browser
        self.user = user
    }

    func open(_ region: LocalRegion, token: String) async throws {
        let gate = region.file.gates[0].webSocket
        try await browser.open("https://\(gate)/app/#token=\(token)&device=web")
    }

    var status: String { get async throws { try await browser.string("return document.querySelector('#status').textContent") } }
    var region: String { get async throws { try await browser.string("return document.querySelector('#region').textContent") } }
    var statusLine: String { get async throws { try await browser.string("return document.querySelector('header').textContent.replace(/\\s+/g, ' ').trim()") } }
    var typing: String { get async throws { try await browser.string("return document.querySelector('#typing').textContent") } }
    var messages: [String] {
        get async throws { try await browser.strings("return [...document.querySelectorAll('#messages .message .body')].map(e => e.textContent)") }
    }
    var pending: [String] {
        get async throws { try await browser.strings("return [...document.querySelectorAll('#pending li')].map(e => e.textContent)") }
    }
    var conversations: [String] {
        get async throws { try await browser.strings("return [...document.querySelectorAll('.conversation')].map(e => e.textContent)") }
    }
    var readMarks: Int {
        get async throws { Int(try await browser.run("return document.querySelectorAll('#messages .message .read').length")) ?? -1 }
    }

    func fill(_ selector: String, _ text: String) async throws {
        try await browser.run("""
            const field = document.querySelector(arguments[0]);
            field.value = arguments[1];
            field.dispatchEvent(new Event('input'));
            """, [selector, text])
    }

    func submit(_ form: String) async throws {
        try await browser.run("document.querySelector(arguments[0]).requestSubmit()", [form])
    }

    func chat(with other: String) async throws {
        try await fill("#new-chat-user", other)
        try await submit("#new-chat")
    }

    func openConversation(_ id: String) async throws {
        try await browser.run("document.querySelector(`.conversation[data-id='${arguments[0]}']`).click()", [id])
    }

    func send(_ text: String) async throws {
        try await fill("#composer", text)
        try await submit("#compose")
    }

    func type(_ text: String) async throws { try await fill("#composer", text) }

    func edit(_ body: String, to text: String) async throws {
        try await browser.run("""
            const message = [...document.querySelectorAll('#messages .message')].find(m => m.querySelector('.body').textContent === arguments[0]);
            message.querySelector('button.edit').click();
            """, [body])
        try await send(text)
    }
}
