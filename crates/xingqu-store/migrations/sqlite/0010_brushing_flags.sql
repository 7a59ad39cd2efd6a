-- Order lines the hot-list brushing rules (刷单: velocity, address or device cluster) flagged when their
-- order was paid. Written by the node that judged them, so analytics (quality GMV) and a
-- restarted node's hot lists and review queue see them. One row per line: the first rule wins.
CREATE TABLE brushing_flags (
    line_id BIGINT PRIMARY KEY REFERENCES order_lines (id),
    order_id BIGINT NOT NULL REFERENCES orders (id),
    rule TEXT NOT NULL CHECK (rule IN ('velocity', 'address_cluster', 'device_cluster')),
    flagged_at_ms BIGINT NOT NULL
);
CREATE INDEX brushing_flags_order ON brushing_flags (order_id);
CREATE INDEX brushing_flags_at ON brushing_flags (flagged_at_ms);

-- Analytics read paid orders by payment and shipment time.
CREATE INDEX orders_paid_at ON orders (paid_at_ms) WHERE paid_at_ms IS NOT NULL;
CREATE INDEX orders_shipped_at ON orders (shipped_at_ms) WHERE shipped_at_ms IS NOT NULL;
