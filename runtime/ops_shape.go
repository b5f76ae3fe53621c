package runtime

var shapeOps = []opDef{}
