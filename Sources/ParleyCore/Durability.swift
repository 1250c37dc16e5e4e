/// When a send is acknowledged.
public enum Durability: String, Sendable {
    /// After the commit in the region that took it.
    case local
    /// After `geoQuorum` other regions have stored it too.
    case geo
}
