import ArgumentParser

/// `parley`: one executable, one subcommand per role. It only wires roles
/// together; what each role does lives in its module.
@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Parley: an active-active, multi-region instant-messaging backend.",
        subcommands: [
            LogicCommand.self, GateCommand.self, SyncCommand.self, TokenCommand.self,
            ChatCommand.self, DemoCommand.self, BenchCommand.self, SocialBenchCommand.self, FillCommand.self, ProxyCommand.self, CheckCommand.self, RouteCommand.self, DrillCommand.self,
            ExtCommand.self, PushSinkCommand.self, CertsCommand.self, DashboardCommand.self, RecoverCommand.self,
        ]
    )
}
