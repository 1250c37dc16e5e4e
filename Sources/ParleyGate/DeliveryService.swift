import GRPCCore
import ParleyProto

/// The `Gate` RPC: logic hands pushes to the gate that holds the devices.
struct DeliveryService: Parley_Gate.SimpleServiceProtocol {
    let registry: ConnectionRegistry

    func deliver(request: Parley_DeliverRequest, context: ServerContext) async throws -> Parley_DeliverResponse {
        var delivered: UInt32 = 0
        for delivery in request.deliveries {
            let identity = GateConnection.Identity(userID: delivery.userID, deviceID: delivery.deviceID)
            guard let connection = registry.connection(for: identity) else { continue }
            connection.send(.with { $0.push = delivery.push })
            delivered += 1
        }
        return .with { $0.delivered = delivered }
    }
}
